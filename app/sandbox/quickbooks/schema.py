"""QuickBooks Online's vocabulary: entity field names from the XSDs, what may be queried, the fixed limits."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

API = r"/v3/company/(?P<realm>[^/]+)"
CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)
SCOPE = "com.intuit.quickbooks.accounting"
DEFAULT_REALM = "9341453172471737"
CDC_DAYS = 30
CDC_MAX = 1000
QUERY_MAX = 1000
QUERY_DEFAULT = 100
BATCH_MAX = 30
# US Pacific standard time: QBO sandbox companies are US Pacific; this is used without a time zone database
PACIFIC_STANDARD = dt.timezone(dt.timedelta(hours=-8), "PST")
REQUESTID_TTL = 24 * 3600.0  # retention is undocumented (reference §8: "assume hours, not weeks")
CURRENCIES = {"USD": "United States Dollar", "GBP": "British Pound Sterling", "EUR": "Euro",
              "AUD": "Australian Dollar", "CAD": "Canadian Dollar", "NZD": "New Zealand Dollar"}
RATES = {"USD": Decimal(1), "GBP": Decimal("1.27"), "EUR": Decimal("1.08"), "AUD": Decimal("0.66"),
         "CAD": Decimal("0.73"), "NZD": Decimal("0.60")}  # home (USD) per unit, fixed for the sandbox


# Field names from the XSD (Finance.xsd / IntuitNamesTypes.xsd); anything else is error 2010.
CUSTOMER_FIELDS = frozenset((
    "Id SyncToken MetaData CustomField AttachableRef domain status sparse IntuitId Organization Title GivenName "
    "MiddleName FamilyName Suffix FullyQualifiedName CompanyName DisplayName PrintOnCheckName UserId Active "
    "V4IDPseudonym PrimaryPhone AlternatePhone Mobile Fax PrimaryEmailAddr WebAddr OtherContactInfo "
    "DefaultTaxCodeRef Taxable BillAddr ShipAddr OtherAddr ContactName AltContactName Notes Job BillWithParent "
    "RootCustomerRef ParentRef Level CustomerTypeRef SalesTermRef SalesRepRef TaxGroupCodeRef TaxRateRef "
    "PaymentMethodRef CCDetail PriceLevelRef Balance OpenBalanceDate BalanceWithJobs CreditLimit AcctNum "
    "CurrencyRef OverDueBalance TotalRevenue TotalExpense PreferredDeliveryMethod ResaleNum JobInfo TDSEnabled "
    "CustomerEx SecondaryTaxIdentifier ARAccountRef PrimaryTaxIdentifier TaxExemptionReasonId IsProject "
    "BusinessNumber GSTIN GSTRegistrationType IsCISContractor ClientCompanyId ClientEntityId Source TaxRegime"
).split())


ITEM_FIELDS = frozenset((
    "Id SyncToken MetaData CustomField AttachableRef domain status sparse Name Sku Description Active SubItem "
    "ParentRef Level FullyQualifiedName Taxable SalesTaxIncluded PercentBased UnitPrice RatePercent Type "
    "PaymentMethodRef UOMSetRef IncomeAccountRef PurchaseDesc PurchaseTaxIncluded PurchaseCost ExpenseAccountRef "
    "COGSAccountRef AssetAccountRef PrefVendorRef AvgCost TrackQtyOnHand QtyOnHand QtyOnPurchaseOrder "
    "QtyOnSalesOrder ReorderPoint ManPartNum DepositToAccountRef SalesTaxCodeRef PurchaseTaxCodeRef InvStartDate "
    "BuildPoint PrintGroupedItems SpecialItem SpecialItemType ItemGroupDetail ItemAssemblyDetail AbatementRate "
    "ReverseChargeRate ServiceType ItemCategoryType TaxClassificationRef UQCDisplayText UQCId ClassRef Source "
    "DeferredRevenue CustomExtensions ItemEx"
).split())
_TXN = ("Id SyncToken MetaData CustomField AttachableRef domain status sparse DocNumber TxnDate TxnSubType "
        "DepartmentRef CurrencyRef ExchangeRate PrivateNote TxnStatus LinkedTxn Line TxnTaxDetail TxnSource "
        "TaxFormType TaxFormNum TransactionLocationType Tag TxnApprovalInfo RecurDataRef RecurringInfo ProjectRef "
        "TotalCostAmount HomeTotalCostAmount ")
_SALES = ("AutoDocNumber CustomerRef CustomerMemo BillAddr ShipAddr FreeFormAddress ShipFromAddr RemitToRef "
          "ClassRef SalesTermRef DueDate SalesRepRef PONumber FOB ShipMethodRef ShipDate TrackingNum "
          "GlobalTaxCalculation TotalAmt HomeTotalAmt ApplyTaxAfterDiscount ShippingTaxIncludedInTotalTax "
          "TemplateRef PrintStatus EmailStatus BillEmail BillEmailCc BillEmailBcc ARAccountRef Balance HomeBalance "
          "FinanceCharge PaymentMethodRef PaymentRefNum PaymentType CheckPayment CreditCardPayment "
          "DepositToAccountRef DeliveryInfo DiscountRate DiscountAmt GovtTxnRefIdentifier TaxExemptionRef ")
INVOICE_FIELDS = frozenset((_TXN + _SALES + (
    "Deposit AllowIPNPayment AllowOnlinePayment AllowOnlineCreditCardPayment AllowOnlineACHPayment "
    "AllowOnlinePayPalPayment AllowOnlineAffirmPayment EInvoiceStatus ECloudStatusTimeStamp CfdiUse Exportation "
    "GlobalInfo invoiceStatus callToAction invoiceStatusLog LessCIS InvoiceLink PaymentDetailsMessage "
    "ConvenienceFeeDetail EnabledSurchargeInfo InvoiceLinkSecurityCode InvoiceLinkExpiryDate AutoPayEligible "
    "SchedulePayEligible ScheduledPaymentId GratuityEnabled FinancingProductType SubscriptionPaymentsSetting "
    "TxnRetainageDetail InvoiceEx")).split())
CREDIT_MEMO_FIELDS = frozenset((_TXN + _SALES + "RemainingCredit InvoiceRef CreditMemoEx").split())
PAYMENT_FIELDS = frozenset((_TXN + (
    "CustomerRef RemitToRef ARAccountRef DepositToAccountRef PaymentMethodRef PaymentRefNum PaymentType "
    "CheckPayment CreditCardPayment TotalAmt UnappliedAmt ProcessPayment PaymentExtendedType PaymentEx")).split())
ADDRESS_FIELDS = frozenset(("Id Line1 Line2 Line3 Line4 Line5 City Country CountryCode County "
                            "CountrySubDivisionCode PostalCode PostalCodeSuffix Lat Long Tag Note").split())
LINE_FIELDS = frozenset((
    "Id LineNum Description Amount Received LinkedTxn DetailType PaymentLineDetail DiscountLineDetail "
    "TaxLineDetail SalesItemLineDetail DescriptionLineDetail ItemBasedExpenseLineDetail "
    "AccountBasedExpenseLineDetail ReimburseLineDetail DepositLineDetail PurchaseOrderItemLineDetail "
    "SalesOrderItemLineDetail ItemReceiptLineDetail JournalEntryLineDetail GroupLineDetail SubTotalLineDetail "
    "TDSLineDetail ItemAdjustmentLineDetail CustomField ProjectRef CostAmount HomeCostAmount CustomExtensions "
    "LineEx").split())
SALES_DETAIL_FIELDS = frozenset((
    "ItemRef ClassRef UnitPrice UnitCostPrice RatePercent PriceLevelRef MarkupInfo Qty UOMRef ItemAccountRef "
    "InventorySiteRef TaxCodeRef TaxClassificationRef ServiceDate TaxInclusiveAmt DiscountRate DiscountAmt "
    "DeferredRevenue RetainageAmount SalesItemLineDetailEx").split())
DISCOUNT_DETAIL_FIELDS = frozenset(
    "DiscountRef PercentBased DiscountPercent DiscountAccountRef ServiceDate ClassRef TaxCodeRef".split())
FIELDS = {"Customer": CUSTOMER_FIELDS, "Item": ITEM_FIELDS, "Invoice": INVOICE_FIELDS,
          "CreditMemo": CREDIT_MEMO_FIELDS, "Payment": PAYMENT_FIELDS}
URL_ENTITY = {"customer": "Customer", "item": "Item", "invoice": "Invoice", "payment": "Payment",
              "creditmemo": "CreditMemo", "account": "Account", "vendor": "Vendor", "employee": "Employee"}
NAME_LISTS = ("Customer", "Vendor", "Employee", "Item", "Account")
NAME_HOLDERS = ("Customer", "Vendor", "Employee")  # DisplayName is unique across these (6240)
TRANSACTIONS = ("Invoice", "Payment", "CreditMemo")
READ_ONLY = frozenset(("Id", "SyncToken", "MetaData", "domain", "status", "sparse", "FullyQualifiedName",
                       "Balance", "BalanceWithJobs", "V4IDPseudonym", "TotalAmt", "HomeTotalAmt", "HomeBalance",
                       "RemainingCredit", "UnappliedAmt", "LinkedTxn", "Level", "OverDueBalance", "TotalRevenue",
                       "TotalExpense", "TxnTaxDetail", "Deposit", "InvoiceLink", "AvgCost"))
NUMERIC = frozenset(("Amount", "UnitPrice", "Qty", "TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt",
                     "BalanceWithJobs", "DiscountPercent", "UnappliedAmt", "RemainingCredit", "ExchangeRate",
                     "TotalTax", "Deposit", "PurchaseCost", "QtyOnHand", "CurrentBalance",
                     "CurrentBalanceWithSubAccounts"))


# Which properties a query may filter or sort on (reference §5 "reliable filters").
_COMMON = {"id": ("Id", "id"), "metadata.createtime": ("_created", "ts"),
           "metadata.lastupdatedtime": ("_updated", "ts")}


QUERYABLE: dict[str, dict[str, tuple[str, str]]] = {
    "Customer": {**_COMMON, "displayname": ("DisplayName", "str"), "givenname": ("GivenName", "str"),
                 "familyname": ("FamilyName", "str"), "companyname": ("CompanyName", "str"),
                 "primaryemailaddr": ("PrimaryEmailAddr.Address", "str"), "active": ("Active", "bool"),
                 "balance": ("Balance", "num"), "fullyqualifiedname": ("FullyQualifiedName", "str")},
    "Item": {**_COMMON, "name": ("Name", "str"), "sku": ("Sku", "str"), "type": ("Type", "str"),
             "active": ("Active", "bool"), "fullyqualifiedname": ("FullyQualifiedName", "str")},
    "Invoice": {**_COMMON, "docnumber": ("DocNumber", "str"), "txndate": ("TxnDate", "date"),
                "duedate": ("DueDate", "date"), "customerref": ("CustomerRef.value", "id"),
                "balance": ("Balance", "num"), "totalamt": ("TotalAmt", "num")},
    "CreditMemo": {**_COMMON, "docnumber": ("DocNumber", "str"), "txndate": ("TxnDate", "date"),
                   "customerref": ("CustomerRef.value", "id"), "totalamt": ("TotalAmt", "num")},
    "Payment": {**_COMMON, "txndate": ("TxnDate", "date"), "customerref": ("CustomerRef.value", "id")},
    "Account": {**_COMMON, "name": ("Name", "str"), "accounttype": ("AccountType", "str"),
                "classification": ("Classification", "str"), "active": ("Active", "bool")},
    "Vendor": {**_COMMON, "displayname": ("DisplayName", "str"), "active": ("Active", "bool")},
    "Employee": {**_COMMON, "displayname": ("DisplayName", "str"), "active": ("Active", "bool")},
    "CompanyInfo": dict(_COMMON),
}
CDC_ENTITIES = ("Customer", "Vendor", "Employee", "Item", "Account", "Invoice", "Payment", "CreditMemo")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
