"""The entities the emulator models: file parsing (DMF XML-Element/XML-Attribute and CSV) and
row validation against a company's reference data, producing F&O-like execution errors."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ._models import ExecutionErrorRecord, Outcome
from ._reference_data import CompanyData, company_data

# D365 record ids start at 5637144576; staging rows get consecutive ones.
_FIRST_RECID = 5637144576
_SNIFF_BYTES = 512


class FileFormatError(Exception):
    """The file cannot be read as the entity's source format (a pre-processing error)."""


def entity_key(name: str) -> str:
    """A comparable entity name: lower case without spaces."""
    return "".join(name.split()).lower()


def read_rows(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a DMF source file, field names upper-cased; XML when it starts with '<'.

    :raises FileFormatError: the file does not parse.
    """
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    text_head = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if not text_head:
        raise FileFormatError("The source file is empty.")
    if text_head.startswith(b"<"):
        return _xml_rows(path)
    return _csv_rows(path)


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_rows(path: Path) -> Iterator[dict[str, str]]:
    depth = 0
    root: ET.Element | None = None
    try:
        # The files come from our own tests and local runs, not from strangers.
        for event, element in ET.iterparse(path, events=("start", "end")):  # noqa: S314
            if event == "start":
                depth += 1
                root = element if depth == 1 else root
                continue
            depth -= 1
            if depth == 1:
                row = {_local_name(k).upper(): v for k, v in element.attrib.items()}
                for child in element:
                    row[_local_name(child.tag).upper()] = (child.text or "").strip()
                yield row
                # Rows are consumed one at a time; free them so big files stay small in memory.
                element.clear()
                if root is not None:
                    root.clear()
    except ET.ParseError as exc:
        raise FileFormatError(f"The source file is not valid XML: {exc}.") from exc


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise FileFormatError("The source file has no header row.")
            for row in reader:
                if None in row:
                    raise FileFormatError(
                        f"Line {reader.line_num} has more values than the header has columns."
                    )
                yield {(k or "").strip().upper(): (v or "").strip() for k, v in row.items()}
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"The source file is not UTF-8 text: {exc}.") from exc
    except csv.Error as exc:
        raise FileFormatError(f"The source file is not valid CSV: {exc}.") from exc


def _must_fill(record_id: str, field_name: str, label: str) -> ExecutionErrorRecord:
    return ExecutionErrorRecord(record_id, field_name, f"Field '{label}' must be filled in.")


def _not_in_table(
    record_id: str, field_name: str, value: str, label: str, table: str
) -> ExecutionErrorRecord:
    return ExecutionErrorRecord(
        record_id,
        field_name,
        f"The value '{value}' in field '{label}' is not found in the relating table '{table}'.",
    )


def _not_convertible(
    record_id: str, field_name: str, value: str, label: str, kind: str
) -> ExecutionErrorRecord:
    return ExecutionErrorRecord(
        record_id,
        field_name,
        f"The value '{value}' in field '{label}' could not be converted to type {kind}.",
    )


def _decimal(text: str) -> Decimal | None:
    if not text:
        return Decimal(0)
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _date(text: str) -> date | None:
    for pattern in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%m/%d/%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


@dataclass
class _Validation:
    rows: int = 0
    failed_rows: set[str] = field(default_factory=set)
    errors: list[ExecutionErrorRecord] = field(default_factory=list)

    def add(self, error: ExecutionErrorRecord) -> None:
        self.errors.append(error)
        self.failed_rows.add(error.record_id)

    def outcome(self) -> Outcome:
        if not self.errors:
            return Outcome("Processed")
        summary = "Failed" if len(self.failed_rows) >= self.rows else "PartiallySucceeded"
        return Outcome("ProcessedWithErrors", tuple(self.errors), summary)


def _validate_customers(rows: Iterator[dict[str, str]], data: CompanyData) -> _Validation:
    result = _Validation()
    seen: set[str] = set()
    for index, row in enumerate(rows):
        result.rows += 1
        rid = str(_FIRST_RECID + index)
        account = row.get("CUSTOMERACCOUNT", "")
        group = row.get("CUSTOMERGROUPID", "")
        currency = row.get("SALESCURRENCYCODE", "")
        if not account:
            result.add(_must_fill(rid, "CustomerAccount", "Customer account"))
        elif account.upper() in seen:
            result.add(
                ExecutionErrorRecord(
                    rid,
                    "CustomerAccount",
                    "Cannot create a record in Customers (CustTable). "
                    f"Customer account: {account}. "
                    "The record already exists.",
                )
            )
        seen.add(account.upper())
        if not group:
            result.add(_must_fill(rid, "CustomerGroupId", "Customer group"))
        elif group not in data.customer_groups:
            result.add(
                _not_in_table(rid, "CustomerGroupId", group, "Customer group", "Customer groups")
            )
        if not currency:
            result.add(_must_fill(rid, "SalesCurrencyCode", "Currency"))
        elif currency.upper() not in data.currencies:
            result.add(_not_in_table(rid, "SalesCurrencyCode", currency, "Currency", "Currency"))
        if row.get("PARTYTYPE", "Organization") == "Organization" and not row.get(
            "ORGANIZATIONNAME"
        ):
            result.add(_must_fill(rid, "OrganizationName", "Name"))
        credit_limit = row.get("CREDITLIMIT", "")
        if _decimal(credit_limit) is None:
            result.add(_not_convertible(rid, "CreditLimit", credit_limit, "Credit limit", "Real"))
    return result


@dataclass
class _Voucher:
    first_record_id: str
    trans_date: date | None
    balance: Decimal = Decimal(0)
    record_ids: list[str] = field(default_factory=list)


def _check_ledger_account(
    result: _Validation, rid: str, field_name: str, account: str, data: CompanyData
) -> None:
    main_account = account.split("-", 1)[0]
    if main_account not in data.main_accounts:
        result.add(_not_in_table(rid, field_name, main_account, "Main account", "Main accounts"))


def _validate_journal_line(
    result: _Validation, rid: str, row: dict[str, str], data: CompanyData
) -> tuple[Decimal, date | None, bool]:
    """Check one line; answer (debit - credit, date, has offset account)."""
    journal_name = row.get("JOURNALNAME", "")
    if not journal_name:
        result.add(_must_fill(rid, "JournalName", "Name"))
    elif journal_name not in data.journal_names:
        result.add(_not_in_table(rid, "JournalName", journal_name, "Name", "Journal names"))
    if not row.get("VOUCHER"):
        result.add(_must_fill(rid, "Voucher", "Voucher"))
    raw_date = row.get("TRANSDATE", "")
    trans_date = _date(raw_date)
    if not raw_date:
        result.add(_must_fill(rid, "TransDate", "Date"))
    elif trans_date is None:
        result.add(_not_convertible(rid, "TransDate", raw_date, "Date", "Date"))
    account = row.get("ACCOUNTDISPLAYVALUE", "")
    if not account:
        result.add(_must_fill(rid, "AccountDisplayValue", "Account"))
    elif row.get("ACCOUNTTYPE", "Ledger") == "Ledger":
        _check_ledger_account(result, rid, "AccountDisplayValue", account, data)
    offset = row.get("OFFSETACCOUNTDISPLAYVALUE", "")
    if offset and row.get("OFFSETACCOUNTTYPE", "Ledger") == "Ledger":
        _check_ledger_account(result, rid, "OffsetAccountDisplayValue", offset, data)
    currency = row.get("CURRENCYCODE", "") or data.accounting_currency
    if currency.upper() not in data.currencies:
        result.add(_not_in_table(rid, "CurrencyCode", currency, "Currency", "Currency"))
    amounts = []
    for key, name, label in (
        ("DEBITAMOUNT", "DebitAmount", "Debit"),
        ("CREDITAMOUNT", "CreditAmount", "Credit"),
    ):
        value = _decimal(row.get(key, ""))
        if value is None:
            result.add(_not_convertible(rid, name, row.get(key, ""), label, "Real"))
            value = Decimal(0)
        amounts.append(value)
    return amounts[0] - amounts[1], trans_date, bool(offset)


def _validate_journal(rows: Iterator[dict[str, str]], data: CompanyData) -> _Validation:
    result = _Validation()
    vouchers: dict[tuple[str, str], _Voucher] = {}
    for index, row in enumerate(rows):
        result.rows += 1
        rid = str(_FIRST_RECID + index)
        amount, trans_date, has_offset = _validate_journal_line(result, rid, row, data)
        key = (row.get("JOURNALBATCHNUMBER", ""), row.get("VOUCHER", ""))
        voucher = vouchers.setdefault(key, _Voucher(rid, trans_date))
        voucher.record_ids.append(rid)
        if not has_offset:
            voucher.balance += amount
    for (_, number), voucher in vouchers.items():
        if voucher.balance == 0:
            continue
        day = voucher.trans_date
        when = f"{day.month}/{day.day}/{day.year}" if day else ""
        difference = f"{voucher.balance:.2f}"
        result.add(
            ExecutionErrorRecord(
                voucher.first_record_id,
                "",
                f"The transactions on voucher {number} do not balance "
                f"as per {when}. (accounting currency: {difference} - "
                f"reporting currency: {difference})",
            )
        )
        result.failed_rows.update(voucher.record_ids)
    return result


_VALIDATORS = {
    "customersv3": _validate_customers,
    "custcustomerv3entity": _validate_customers,
    "generaljournal": _validate_journal,
    "ledgerjournalentity": _validate_journal,
}


def is_modelled(entity: str) -> bool:
    """True when the emulator validates rows of this entity."""
    return entity_key(entity) in _VALIDATORS


def same_entity(job_entity: str, requested: str) -> bool:
    """True when the enqueue's `entity` names the job's entity (aliases of one model match)."""
    job_key, requested_key = entity_key(job_entity), entity_key(requested)
    if job_key == requested_key:
        return True
    validator = _VALIDATORS.get(job_key)
    return validator is not None and validator is _VALIDATORS.get(requested_key)


def evaluate(entity: str, company: str, path: Path) -> Outcome:
    """Process a file for an entity in a company, as the DMF batch would."""
    data = company_data(company)
    if data is None:
        return Outcome(
            "PreProcessingError",
            (ExecutionErrorRecord("", "", f"Company '{company}' does not exist."),),
            "Failed",
        )
    validator = _VALIDATORS.get(entity_key(entity))
    if validator is None:
        return Outcome("Processed")
    try:
        result = validator(read_rows(path), data)
    except FileFormatError as exc:
        return Outcome("PreProcessingError", (ExecutionErrorRecord("", "", str(exc)),), "Failed")
    return result.outcome()
