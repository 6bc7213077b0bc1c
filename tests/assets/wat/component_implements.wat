;; An import with the (implements ...) name attribute: binary nameattributes
;; form 0x02 with a vec of attributes, not the plain 0x00 name.
(component
  (import "primary" (implements "wasi:keyvalue/store@0.2.0") (instance))
  (import "wasi:cli/stdout@0.2.0" (instance))
)
