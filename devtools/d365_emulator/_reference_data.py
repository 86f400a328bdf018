"""Reference data per legal entity (company), shaped after the Contoso demo data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CompanyData:
    """The setup of one legal entity that imported rows are validated against."""

    company: str
    accounting_currency: str
    currencies: frozenset[str]
    customer_groups: frozenset[str]
    main_accounts: frozenset[str]
    journal_names: frozenset[str]


_COMMON_CURRENCIES = frozenset({"USD", "EUR", "CAD", "GBP", "MXN", "JPY", "CNY", "AUD", "CHF"})
_MAIN_ACCOUNTS = frozenset(
    {
        "110110",  # bank
        "110180",  # petty cash
        "130100",  # accounts receivable
        "140200",  # inventory
        "200110",  # accounts payable
        "211100",  # accrued liabilities
        "401100",  # sales
        "600120",  # office supplies
        "601500",  # travel
        "606300",  # rent
        "618900",  # miscellaneous expense
    }
)

COMPANIES: dict[str, CompanyData] = {
    data.company: data
    for data in (
        CompanyData("USMF", "USD", _COMMON_CURRENCIES,
                    frozenset({"10", "20", "30", "80", "90"}), _MAIN_ACCOUNTS,
                    frozenset({"GenJrn", "Accrual", "Daily"})),
        CompanyData("DEMF", "EUR", _COMMON_CURRENCIES,
                    frozenset({"10", "20", "30", "40"}), _MAIN_ACCOUNTS,
                    frozenset({"GenJrn", "Daily"})),
        CompanyData("GBSI", "GBP", frozenset({"GBP", "EUR", "USD"}),
                    frozenset({"10", "20", "30"}), _MAIN_ACCOUNTS,
                    frozenset({"GenJrn"})),
    )
}  # fmt: skip


def company_data(company: str) -> CompanyData | None:
    """The reference data of a company (case-insensitive), None when it does not exist."""
    return COMPANIES.get(company.upper())
