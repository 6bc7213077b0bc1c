;; A core module importing one of every import kind, including the proposal
;; variants a reader must decode: a GC reference table, shared and 64-bit
;; memories, mutable globals and an exception-handling tag.
(module
  (type $binop (func (param i32 i32) (result i32)))
  (type $point (struct (field i32) (field i32)))
  (import "env" "add" (func $add (type $binop)))
  (import "env" "funcs" (table 1 funcref))
  (import "env" "points" (table 1 16 (ref null $point)))
  (import "env" "externs" (table 0 externref))
  (import "env" "memory" (memory 1))
  (import "env" "shared_memory" (memory 1 16 shared))
  (import "env" "memory64" (memory i64 1 65536))
  (import "env" "base" (global i32))
  (import "env" "counter" (global (mut i64)))
  (import "env" "failure" (tag (param i32)))
)
