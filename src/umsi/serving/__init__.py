"""``umsi-serve``: saliency maps, importance maps and design classes over HTTP, on LitServe (:mod:`.server`)."""
