"""Talking OCI: references, media types, manifests, image layouts, building artifacts, and
recognising the Wasm artifact formats in the wild."""
