"""The update bench: one optimizer step on the host (``host_update``, the baseline) and with
GradPIM (``update``), side by side.  It drives the host controller, the PIM engine and the
allocator, so it sits beside ``system`` above them; nothing below imports it."""
