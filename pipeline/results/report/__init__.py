"""The run report: one self-contained HTML page per `imgpipe run` (see `write_report`)."""

from pipeline.results.report.render import SECTION_TITLES, write_report

__all__ = ["SECTION_TITLES", "write_report"]
