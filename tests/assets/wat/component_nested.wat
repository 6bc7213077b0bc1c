;; A component that imports nothing at the top level but smuggles a socket in:
;; its core module $app imports wasi_snapshot_preview1.sock_accept, satisfied by
;; a stub module inside the component. It also nests a component with its own
;; core module.
(component
  (core module $stub
    (func (export "sock_accept") (param i32 i32 i32) (result i32)
      i32.const 58))
  (core module $app
    (import "wasi_snapshot_preview1" "sock_accept"
      (func $sock_accept (param i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "serve") (result i32)
      (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 0))))
  (component $logger
    (core module $sink
      (import "env" "log" (func (param i32)))
      (func (export "flush")))
    (import "log" (func (param "code" u32)))
    (export "log-again" (func 0))
  )
  (core instance $wasi (instantiate $stub))
  (core instance $main (instantiate $app
    (with "wasi_snapshot_preview1" (instance $wasi))))
  (func $serve (result u32) (canon lift (core func $main "serve")))
  (export "serve" (func $serve))
)
