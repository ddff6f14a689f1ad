"""Keeping the evidence current: saved Crossref searches, the candidates they find, their screening, and
the PRISMA 2020 counts. The plain-Python twins of `evidence watch`, `triage` and `prisma`.

- ``searches``: add, list and remove saved searches.
- ``run``: run them against Crossref (deep paging, page by page, resumable); new works become candidates,
  never studies: `find`, `export` and the report do not see them.
- ``triage``: list the pending candidates; include one (it becomes a study), exclude it with a reason,
  undo a decision.
- ``prisma``: records identified, duplicates removed, screened, excluded per reason, included.
"""
