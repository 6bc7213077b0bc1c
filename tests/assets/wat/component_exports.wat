;; A component exporting a func, a type, an instance, a core module, and a
;; component. The inline instance's (export ...) is not a top-level export.
(component
  (core module $math
    (func (export "add") (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.add))
  (core instance $m (instantiate $math))
  (func $add (param "a" u32) (param "b" u32) (result u32)
    (canon lift (core func $m "add")))
  (type $pair (record (field "a" u32) (field "b" u32)))
  (instance $calc (export "add" (func $add)))
  (component $empty)
  (export "add" (func $add))
  (export "pair" (type $pair))
  (export "calc" (instance $calc))
  (export "math-impl" (core module $math))
  (export "empty" (component $empty))
)
