;; A component whose only host import is the wasi:sockets/tcp@0.2.0 instance.
(component
  (import "wasi:sockets/tcp@0.2.0" (instance $tcp
    (export "tcp-socket" (type (sub resource)))
    (export "[method]tcp-socket.is-listening"
      (func (param "self" (borrow 0)) (result bool)))
  ))
)
