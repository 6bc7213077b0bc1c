;; Component-model values (a proposal: validate with --features cm-values).
(component
  (import "greeting" (value $greeting string))
  (export "greeting-again" (value $greeting))
)
