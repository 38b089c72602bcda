"""Reading uploads as customers' tools export them: containers, encodings, delimiters, quoting."""

import gzip
import io

import pandas as pd
import pytest

from retainwise.config.errors import UploadRejected
from retainwise.uploads.reading import Limits, match_columns, read_upload, sniff

ROWS = [
    ["customer_id", "Name", "Tenure Months", "Monthly Charges"],
    ["C1", "Zoë Müller", "5", "29.85"],
    ["C2", "Ana Sánchez", "12", "56.95"],
]


def csv_text(delimiter: str = ",", newline: str = "\n", rows=ROWS) -> str:
    return newline.join(delimiter.join(row) for row in rows) + newline


def cells(data: bytes, **kwargs) -> list[list[str]]:
    frame = read_upload(data, **kwargs).frame
    return [list(frame.columns)] + frame.astype(object).where(frame.notna(), None).values.tolist()


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252", "latin-1"]
)
def test_each_encoding_reads_to_the_same_cells(encoding):
    assert cells(csv_text().encode(encoding)) == ROWS


def test_cp1252_only_characters_are_read_as_windows_text():
    table = read_upload("customer_id,price\nC1,5 €\nC2,“quoted”\n".encode("cp1252"))
    assert table.source["encoding"] == "cp1252"
    assert table.frame["price"].tolist() == ["5 €", "“quoted”"]


@pytest.mark.parametrize(
    "delimiter, name", [(",", "comma"), (";", "semicolon"), ("\t", "tab"), ("|", "pipe")]
)
def test_each_delimiter_is_detected(delimiter, name):
    table = read_upload(csv_text(delimiter).encode())
    assert table.source["delimiter"] == name
    assert cells(csv_text(delimiter).encode()) == ROWS


def test_semicolon_file_with_decimal_commas_is_not_mistaken_for_comma_separated():
    text = "customer_id;tenure;charges\nC1;1;29,85\nC2;34;1889,50\nC3;2;53,85\n"
    assert sniff(text)[0] == ";"
    assert read_upload(text.encode()).frame["charges"].tolist() == ["29,85", "1889,50", "53,85"]


def test_a_delimiter_absent_from_the_text_is_not_parsed_for(monkeypatch):
    """Sniffing parses the text once per delimiter it holds (a 1k-row file: once, not four
    times); the delimiter and header are those of parsing it for every delimiter."""
    from retainwise.uploads import reading

    parsed: list[str] = []
    real_reader = reading.csv.reader

    def counting(text, delimiter):
        parsed.append(delimiter)
        return real_reader(text, delimiter=delimiter)

    monkeypatch.setattr(reading.csv, "reader", counting)
    assert sniff(csv_text(",")) == (",", ROWS[0])
    assert parsed == [","]
    text = "a|b;c\n1|2;3\n4|5;6\n"  # two present: both parsed, a tie goes to the first listed
    assert sniff(text) == (";", ["a|b", "c"])
    assert parsed[1:] == [";", "|"]


def test_quoted_fields_keep_embedded_delimiters_newlines_and_quotes_with_crlf():
    text = 'customer_id,note,tenure\r\nC1,"Smith, John\r\nsecond line",5\r\nC2,"say ""hi""",7\r\n'
    frame = read_upload(text.encode()).frame
    assert frame["note"].tolist() == ["Smith, John\r\nsecond line", 'say "hi"']
    assert frame["tenure"].tolist() == ["5", "7"]


def test_blank_cells_are_missing_and_blank_lines_are_not_rows():
    frame = read_upload(b"customer_id,tenure\nC1,\n\nC2,3\n").frame
    assert len(frame) == 2 and pd.isna(frame["tenure"][0])


def test_gzip_csv_is_decompressed():
    assert cells(gzip.compress(csv_text(";").encode("utf-16"))) == ROWS
    assert read_upload(gzip.compress(csv_text().encode())).source["format"] == "csv+gzip"


def test_gzip_expanding_beyond_the_limit_is_refused():
    bomb = gzip.compress(b"customer_id,x\n" + b"C1,1\n" * 100_000)
    with pytest.raises(UploadRejected, match="expands to more than"):
        read_upload(bomb, max_bytes=10_000)


def test_damaged_gzip_is_refused_with_a_message():
    with pytest.raises(UploadRejected, match="gzip-compressed but the archive is damaged"):
        read_upload(gzip.compress(csv_text().encode())[:20] + b"\x00garbage")


def test_xlsx_first_sheet_is_read_with_numbers_as_csv_text():
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["customer_id", "tenure", "charges", "senior", None])
    sheet.append(["C1", 5, 29.85, True, None])
    sheet.append([None, None, None, None, None])
    sheet.append(["C2", 12.0, 1889.5, False, None])
    book.create_sheet("ignored").append(["not", "read"])
    buffer = io.BytesIO()
    book.save(buffer)
    table = read_upload(buffer.getvalue())
    assert table.source["format"] == "xlsx"
    assert cells(buffer.getvalue()) == [
        ["customer_id", "tenure", "charges", "senior"],
        ["C1", "5", "29.85", "True"],
        ["C2", "12", "1889.5", "False"],
    ]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "the file is empty"),
        (b" \r\n\t\n", "the file is empty"),
        (b"customer_id,tenure\n", "header but no data rows"),
        (b"just one column\nvalue\n", "found a single column"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "it looks like a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "it looks like a PNG image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "old-format Excel (.xls)"),
        (b"abc\x00def\x00\x01\x02\x03" * 50, "contains binary data"),
        (bytes(range(1, 32)) * 40, "contains binary data"),
        (b'customer_id,note\nC1,"never closed\nC2,x\n', 'a closing quote (") is missing'),
        (b'customer_id,note\nC1,x\nC2,"' + b"y\n" * 100_000, "longer than 131072 characters"),
        (b"a,b,c\n1,2,3\n", "the limit is 2 columns"),
    ],
)
def test_unreadable_files_are_rejected_with_a_specific_message(data, message):
    with pytest.raises(UploadRejected, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_upload(data, limits=Limits(max_columns=2))


def test_zip_that_is_not_a_workbook_is_rejected():
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("customers.csv", csv_text())
    with pytest.raises(UploadRejected, match="ZIP archive, not a CSV or Excel"):
        read_upload(buffer.getvalue())


def test_rows_shorter_than_the_header_are_set_aside_not_padded():
    table = read_upload(b"customer_id,tenure,plan\nC1,1,a\nC2,2\nC3\nC4,4,d\n")
    assert table.frame["customer_id"].tolist() == ["C1", "C4"]
    assert table.malformed == [
        (2, "2 fields where the header has 3"),
        (3, "1 fields where the header has 3"),
    ]
    assert table.rows_total == 4


def test_trailing_empty_fields_are_not_extra_fields_but_text_after_them_is():
    table = read_upload(b"customer_id,tenure\nC1,1,,\nC2,2,,x\nC3,3,\n")
    assert table.frame["customer_id"].tolist() == ["C1", "C3"]
    assert table.malformed == [(2, "4 fields where the header has 2")]


def test_an_overlong_first_data_row_is_a_bad_row_not_a_bad_file():
    table = read_upload(b"customer_id,tenure\nC1,1,extra\nC2,2\n")
    assert table.malformed == [(1, "3 fields where the header has 2")]
    assert table.frame["customer_id"].tolist() == ["C2"]


def test_rows_wider_than_the_header_are_set_aside_with_their_row_number():
    table = read_upload(b'customer_id,tenure\nC1,"1\n"\nC2,2,oops\nC3,3\n')
    assert table.frame["customer_id"].tolist() == ["C1", "C3"]
    assert table.malformed == [(2, "3 fields where the header has 2")]
    assert table.rows_total == 3


@pytest.mark.parametrize(
    "header", ["customer_id", "Customer ID", "customerID", "CUSTOMER-ID", " customer_id "]
)
def test_header_matching_ignores_case_spaces_underscores_and_hyphens(header):
    frame = pd.DataFrame({header: ["C1"], "tenure": ["1"]})
    assert "customer_id" in match_columns(frame, ["customer_id", "tenure"]).columns


def test_alias_map_renames_other_spellings():
    frame = pd.DataFrame({"Client Number": ["C1"], "months": ["1"]})
    renamed = match_columns(
        frame, ["customer_id", "tenure"], {"client number": "customer_id", "Months": "tenure"}
    )
    assert list(renamed.columns) == ["customer_id", "tenure"]


def test_two_headers_matching_one_column_is_an_error_not_a_guess():
    frame = pd.DataFrame({"customer_id": ["C1"], "Customer ID": ["C2"]})
    with pytest.raises(UploadRejected, match="both match 'customer_id'"):
        match_columns(frame, ["customer_id"])
    aliased = pd.DataFrame({"customer_id": ["C1"], "client": ["C2"]})
    with pytest.raises(UploadRejected, match="both match 'customer_id'"):
        match_columns(aliased, ["customer_id"], {"client": "customer_id"})


def test_regular_files_take_the_arrow_reader_and_irregular_ones_the_exact_reader():
    regular = read_upload(csv_text().encode())
    irregular = read_upload((csv_text() + "C3,x,1,2,surplus\n").encode())
    assert set(map(str, regular.frame.dtypes)) == {"str"}  # Arrow-backed text, zero-copy later
    assert irregular.malformed == [(3, "5 fields where the header has 4")]
    assert (
        regular.frame.astype(object).values.tolist()
        == irregular.frame.astype(object).values.tolist()
    )


def test_a_stray_quote_mark_is_read_by_the_exact_reader():
    frame = read_upload(b'customer_id,screen\nC1,27" wide\nC2,24\n').frame
    assert frame["screen"].tolist() == ['27" wide', "24"]


def test_workbook_expanding_beyond_the_limit_is_refused():
    import openpyxl

    book = openpyxl.Workbook()
    for i in range(300):
        book.active.append([f"C{i}", "x" * 50, i])
    buffer = io.BytesIO()
    book.save(buffer)
    with pytest.raises(UploadRejected, match="the workbook expands to"):
        read_upload(buffer.getvalue(), max_bytes=len(buffer.getvalue()) + 100)
