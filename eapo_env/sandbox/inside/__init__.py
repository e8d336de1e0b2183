"""Scripts that run *inside* the sandbox, each as ``python -I -S -B <script>`` (never imported by the
parent): :mod:`launcher` (the namespace's init, root), :mod:`judge` (holds the tests and the nonce),
:mod:`child` (the program's process), and :mod:`wire` (their message format)."""
