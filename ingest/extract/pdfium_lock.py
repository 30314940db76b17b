"""One lock for every PDFium call in the process.

PDFium is not thread-safe, not even for different documents: two threads calling it at once can
corrupt memory or crash the process (pypdfium2's documentation says so).  The extract stage and
the connectors (drop-folder metadata, scan separators) may run in threads of one process (stage
threads in `casework serve` with ``stage_processes=threads``), so every PDFium call sequence takes
``PDFIUM`` first.  Hold it only around PDFium work, never around OCR or other slow steps, and
close PDFium objects explicitly while holding it (a garbage-collected object's finaliser would
otherwise call PDFium from whatever thread collects it).
"""

from __future__ import annotations

import threading

PDFIUM = threading.RLock()
