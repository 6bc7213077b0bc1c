;; A component that makes outgoing HTTP requests (wasi:http/outgoing-handler); its nested
;; core module imports the lowered `handle` function.
;; Build: wasm-tools parse examples/modules/fetch.wat -o examples/modules/fetch.wasm
(component $fetch
  (import "wasi:http/types@0.2.0" (instance $types))
  (import "wasi:http/outgoing-handler@0.2.0" (instance $out))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout))
  (core module $main
    (import "wasi:http/outgoing-handler@0.2.0" "handle" (func (param i32 i32 i32 i32)))
    (memory (export "memory") 1)
    (func (export "run"))))
