;; A pure-compute library: no imports at all.
;; Build: wasm-tools parse examples/modules/add.wat -o examples/modules/add.wasm
(module $add
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1))))
