"""The command-line tools: one module per console script, each holding only its argument or config handling and
one call into the library. Nothing below this package imports it; library imports happen inside ``main`` so that
``--help`` and config errors answer before torch is loaded."""
