"""`deepgen serve` and human studies: a local web application over run folders.

- :mod:`.studies`: writing a study folder (its images and store), by
  ``deepgen study create``; :mod:`.store`: its SQLite store of judgements.
- :mod:`.hype`: its numbers (fooling rate, HYPE-infinity, bootstrap intervals), made by
  ``deepgen study results``.
- :mod:`.explorer`: decoding latent codes for the browser.
- :mod:`.dashboard`: the runs and studies under the served folders.
- :mod:`.app`: the FastAPI application (needs the ``serve`` extra: fastapi, uvicorn,
  jinja2, limits).
"""
