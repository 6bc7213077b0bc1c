;; A component importing code it does not carry: a core module and a component,
;; plus a resource type and a func. The import/export declarations inside the
;; imported types are not imports or exports of this component.
(component
  (import "codec" (core module
    (import "env" "memory" (memory 1))
    (export "decode" (func (param i32) (result i32)))))
  (import "plugin" (component
    (import "wasi:sockets/tcp@0.2.0" (instance))
    (export "run" (func))))
  (import "handle" (type (sub resource)))
  (import "notify" (func (param "code" u32)))
)
