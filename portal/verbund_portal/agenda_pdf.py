"""A participant's matchmaking agenda as a printable PDF (fpdf2): venues lose their Wi-Fi, paper does not.

Text is set in DejaVu Sans when the system has it (every German and most European letters; Debian's
``fonts-dejavu-core``), else in the PDF's built-in Helvetica, whose Latin-1 still covers ä, ö, ü and ß
(other letters are replaced there rather than failing)."""
from __future__ import annotations

from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/local/share/fonts/dejavu"), Path("/Library/Fonts"))


def _font_files() -> tuple[Path, Path] | None:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            return regular, bold
    return None


class _Agenda(FPDF):
    footer_text = ""
    font_name = "Helvetica"

    def footer(self):
        self.set_y(-15)
        self.set_font(self.font_name, size=8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 10, self.clean(f"{self.footer_text} · {self.page_no()}/{{nb}}"), align="C")

    def clean(self, text: str) -> str:
        """The text as the font can show it (Helvetica: Latin-1 only)."""
        if self.font_name == "DejaVu":
            return text
        return text.replace("–", "-").replace("…", "...").encode("latin-1", "replace").decode("latin-1")


def render(title: str, subtitle: str, columns: tuple[str, str, str, str], rows: list[tuple[str, str, str, str]],
           empty: str, footer: str) -> bytes:
    """The agenda as PDF bytes (A4 portrait): ``title`` and ``subtitle`` (event, place, state of the schedule),
    then a table with ``columns`` (when, where, with whom, note) and one row per meeting in time order, or
    ``empty`` when there is none; ``footer`` on each page with the page number. All texts are already in
    the reader's language."""
    pdf = _Agenda(orientation="P", unit="mm", format="A4")
    fonts = _font_files()
    if fonts:
        pdf.add_font("DejaVu", "", str(fonts[0]))
        pdf.add_font("DejaVu", "B", str(fonts[1]))
        pdf.font_name = "DejaVu"
    pdf.footer_text = footer
    pdf.set_title(title)
    pdf.set_creator("Verbund")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    pdf.set_font(pdf.font_name, "B", 16)
    pdf.multi_cell(0, 8, pdf.clean(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(pdf.font_name, size=10)
    pdf.multi_cell(0, 6, pdf.clean(subtitle), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    if not rows:
        pdf.set_font(pdf.font_name, size=11)
        pdf.multi_cell(0, 6, pdf.clean(empty), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        return bytes(pdf.output())
    pdf.set_font(pdf.font_name, size=10)
    widths = (52, 28, 62, 38)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=6, first_row_as_headings=True) as table:
        heading = table.row()
        for text in columns:
            heading.cell(pdf.clean(text))
        for values in rows:
            row = table.row()
            for text in values:
                row.cell(pdf.clean(text))
    return bytes(pdf.output())
