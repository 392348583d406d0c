"""Views of a result: text, HTML, JSON and plots, kept apart from the data they show.

Each module here reads a :class:`fastcheck.Report` (or a :class:`fastcheck.TaylorResult`)
and returns a presentation of it; none of them computes a verdict. ``bands`` holds Ng's
thresholds (the one definition), ``json`` the one JSON cleaner. Nothing here is imported
by ``import fastcheck``: the result classes import a view when one of their methods is
called, and matplotlib is imported only by ``plot``'s functions.
"""
