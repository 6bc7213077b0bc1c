;; A WASI preview1 command: `_start` writes "hello\n" to stdout, then exits.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; iovec {buf = 16, len = 6} at offset 0; the message at offset 16.
  (data (i32.const 0) "\10\00\00\00\06\00\00\00")
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (call $proc_exit
      (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
)
