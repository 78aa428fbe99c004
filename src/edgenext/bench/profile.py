"""The MAdds counter's old home: ``edgenext.models.profile`` holds it now, below the tasks that count
with it; these names stay importable from here."""

from ..models.profile import PAPER_CLASSES, PAPER_INPUT, count_madds, profile, profile_variant

__all__ = ["PAPER_CLASSES", "PAPER_INPUT", "count_madds", "profile", "profile_variant"]
