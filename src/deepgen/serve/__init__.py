"""`deepgen serve` and human studies: a local web application over run folders.

- :mod:`.studies`: a study folder (images, SQLite store of judgements), made by
  ``deepgen study create``.
- :mod:`.hype`: its numbers (fooling rate, HYPE-infinity, bootstrap intervals), made by
  ``deepgen study results``.
- :mod:`.explorer`: decoding latent codes for the browser.
- :mod:`.dashboard`: the runs and studies under the served folders.
- :mod:`.app`: the FastAPI application (needs the ``serve`` extra: fastapi, uvicorn,
  jinja2, limits).
"""
