"""Admission tests: an apiserver-faithful webhook caller, AdmissionReview fixtures, a stand-in.

There is no kube-apiserver in CI (admission.md §3), so ``apiserver.py`` calls a webhook the
way kube-apiserver's webhook dispatchers do, ``reviews.py`` builds the AdmissionReview requests
they send, and ``standin.py`` is a tiny webhook used only to test the harness itself.
"""
