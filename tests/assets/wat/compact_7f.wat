;; Compact import encoding 1 (0x7F): one module name, then (name, externtype)
;; items. Two groups and one ordinary import give an import section count of 3
;; but five imports.
(module
  (import "wasi_snapshot_preview1"
    (item "sock_accept" (func (param i32 i32 i32) (result i32)))
    (item "path_open"
      (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32))))
  (import "env" "memory" (memory 1))
  (import "wasi_snapshot_preview1"
    (item "sock_recv" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
    (item "sock_send" (func (param i32 i32 i32 i32 i32) (result i32))))
)
