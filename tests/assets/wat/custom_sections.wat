;; A module carrying custom sections: raw ones placed at different positions,
;; a producers section, and (from the $ids) a name section.
(module $annotated
  (@custom "wasmctl:first" (before first) "placed before every other section")
  (@custom "wasmctl:binary" "\00\01\fe\ff with \"quotes\" and \\ backslash")
  (@producers
    (language "C11" "")
    (processed-by "clang" "19.1.0-wasi-sdk")
    (sdk "wasi-sdk" "25.0"))
  (func $double (export "double") (param $x i32) (result i32)
    local.get $x
    local.get $x
    i32.add)
)
