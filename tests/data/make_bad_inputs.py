"""Writes tests/data/bad_inputs.json: the bad-input corpus (run once; the JSON is what tests read)."""

import json
from pathlib import Path

OK, Q = "sync", "quarantine"
rows = []


def add(label, expect, field=None, **f):
    rows.append({"label": label, "expect": expect, "field": field, "fields": f})


# names
add("empty name", Q, "name", name="", email="empty@example.com")
add("blank name", Q, "name", name="   ", email="blank@example.com")
add("very long name", Q, "name", name="Long " * 100 + "Holdings")
add("name with a tab (made a space)", OK, None, name="Tabbed\tTrading Ltd")
add("name with a newline (made a space)", OK, None, name="Line\nBreak Ltd")
add("name with a NUL", Q, "name", name="Null\x00Byte Ltd")
add("name with bell char", Q, "name", name="Bell\x07 Supplies")
add("mixed-script name", OK, None, name="Ölçü Mühendislik 株式会社 Δέλτα", country="TR")
add("Cyrillic name", OK, None, name="ООО Ромашка", country="RU")
add("Arabic name", OK, None, name="شركة النور للتجارة", country="AE")
add("emoji name", OK, None, name="Sunny Side Café ☕", country="GB")
add("right-to-left Hebrew", OK, None, name="חברת אלפא בע\"מ", country="IL")
add("HTML in name", OK, None, name="<b>Bold</b> & <script>alert(1)</script> Ltd", country="GB")
add("formula-looking name", OK, None, name="=HYPERLINK(\"http://evil.example\",\"Click\")", country="GB")
add("plus formula name", OK, None, name="+SUM(A1:A9) Traders", country="GB")
add("at formula name", OK, None, name="@cmd Consulting", country="GB")
add("apostrophe name", OK, None, name="O'Brien & Daughters", country="IE")
add("quotes name", OK, None, name="\"Quoted\" Widgets Inc", country="US")
add("name 100 chars exactly", OK, None, name="N" * 100, country="GB")
add("leading/trailing spaces", OK, None, name="   Padded Name Ltd   ", country="GB")
add("percent and backslash", OK, None, name="100% Pure \\ Natural", country="GB")
add("SQL-looking name", OK, None, name="Robert'); DROP TABLE customers;--", country="GB")
# emails
add("email with a space", Q, "email", name="Spacey Email Ltd", email="accounts @spacey.co.uk")
add("email with two @", Q, "email", name="Double At Ltd", email="billing@@doubleat.com")
add("email two ats apart", Q, "email", name="Two Ats Ltd", email="a@b@twoats.com")
add("email without domain", Q, "email", name="No Domain Ltd", email="billing@")
add("email without @", Q, "email", name="No At Ltd", email="billing.noat.com")
add("email trailing dot", Q, "email", name="Trailing Dot Ltd", email="billing@trailing.com.")
add("email with comma", Q, "email", name="Comma Mail Ltd", email="billing,x@comma.com")
add("email two addresses", Q, "email", name="Two Addresses Ltd", email="a@x.com; b@x.com")
add("email consecutive dots", Q, "email", name="Dots Mail Ltd", email="first..last@dots.com")
add("email uppercase", OK, None, name="Upper Mail Ltd", email="BILLING@UPPERMAIL.COM", country="GB")
add("email with plus", OK, None, name="Plus Mail Ltd", email="billing+ledger@plusmail.com", country="GB")
add("email surrounded by spaces", OK, None, name="Spaced Mail Ltd", email="  billing@spacedmail.com  ", country="GB")
# tax IDs
add("invalid GB VAT", Q, "tax_id", name="Bad VAT UK Ltd", country="GB", tax_id="GB123456789")
add("short GB VAT", Q, "tax_id", name="Short VAT Ltd", country="GB", tax_id="GB 123 4567")
add("invalid DE VAT", Q, "tax_id", name="Falsche USt GmbH", country="DE", tax_id="DE123456789")
add("invalid FR VAT", Q, "tax_id", name="Mauvaise TVA SARL", country="FR", tax_id="FR00123456789")
add("invalid ABN", Q, "tax_id", name="Bad ABN Pty Ltd", country="AU", tax_id="12 345 678 901")
add("invalid GSTIN", Q, "tax_id", name="Bad GSTIN Pvt Ltd", country="IN", tax_id="27AAPFU0939F1ZX")
add("invalid EIN", Q, "tax_id", name="Bad EIN LLC", country="US", tax_id="00-0000000")
add("tax ID letters only", Q, "tax_id", name="Letters Tax Ltd", country="GB", tax_id="NOTAVATNUMBER")
add("tax ID without country", Q, "tax_id", name="Nowhere Tax Ltd", tax_id="123456789")
add("valid DE VAT", OK, None, name="Gute USt GmbH", country="DE", tax_id="DE136695976")
add("valid ABN with spaces", OK, None, name="Good ABN Pty Ltd", country="AU", tax_id="51 824 753 556")
add("valid GSTIN", OK, None, name="Good GSTIN Pvt Ltd", country="IN", tax_id="27AAPFU0939F1ZV")
add("valid EU VAT no country", OK, None, name="Guessed Country BV", tax_id="DE136695976")
# countries and phones
add("unknown country", Q, "country", name="Atlantis Trading", country="Atlantis")
add("country typo", Q, "country", name="Germnay Export GmbH", country="Germnay")
add("country full name", OK, None, name="Full Country Ltd", country="United Kingdom")
add("country lowercase code", OK, None, name="Lower Code Ltd", country="gb")
add("missing country", OK, None, name="No Country Ltd", email="hello@nocountry.example")
add("invalid phone with country", Q, "phone", name="Bad Phone Ltd", country="GB", phone="+44 12")
add("letters as phone", Q, "phone", name="Letter Phone Ltd", country="GB", phone="call me maybe")
add("phone with extension", OK, None, name="Extension Ltd", country="GB", phone="020 7946 0958 ext. 12")
add("phone without country", OK, None, name="Local Phone Ltd", phone="555 0100")
add("international phone", OK, None, name="Intl Phone Ltd", country="US", phone="+1 (415) 555-0132")
# addresses
add("very long street", OK, None, name="Long Street Ltd", country="GB", address="Unit 4, " + "Industrial Estate " * 8)
add("address with newline", OK, None, name="Two Line Address Ltd", country="GB", address="Flat 2\n10 High Street")
add("postcode only", OK, None, name="Postcode Only Ltd", country="GB", zip="SW1A 1AA")
add("unicode city", OK, None, name="Unicode City GmbH", country="DE", city="Düsseldorf", zip="40213")
add("everything at once", Q, "email", name="Everything Wrong\x01", email="x@@y", country="Nowhere",
    tax_id="???")

Path(__file__).with_name("bad_inputs.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
print(len(rows), "records")
