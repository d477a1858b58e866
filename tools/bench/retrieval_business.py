"""A second retrieval test set, of a different kind than the pydoc topics: one long business text
(tools/bench/data/business_handbook.md: a freight company's handbook, policies and annual report,
~2,600 words under 5 parts and 37 sections) and 44 hand-written questions, each naming the section
that answers it. A question is answered when a returned chunk sits under that section.

Two kinds, 22 each: PARAPHRASE questions in a user's words, sharing few words with the answer;
KEYWORD questions that name a term the text uses (an app, a number, a rule's name). The last 8 of
each kind are HELD OUT: written with the others, but never looked at while choosing chunk size,
context or fusion; report them apart (tools/bench/memory_ingest.py does).
"""

from __future__ import annotations

from pathlib import Path

TEXT_PATH = Path(__file__).resolve().parent / "data" / "business_handbook.md"
TITLE = "Halvorsen & Reyes Freight: Company Handbook and Annual Report"
HELD_OUT = 8

PARAPHRASE: list[tuple[str, str]] = [
    ("when do I have to be available for colleagues during the day", "Working hours and flexible time"),
    ("how much extra am I paid for working on a Sunday", "Working hours and flexible time"),
    ("can I do my job from my kitchen table some days", "Remote and hybrid work"),
    ("is there money to buy a desk chair for my house", "Remote and hybrid work"),
    ("how quickly can I be let go in my first months", "Probation"),
    ("what happens to holiday days I did not use by the end of the year", "Annual leave"),
    ("do people who stay longer get more time off", "Annual leave"),
    ("I caught the flu, who do I tell and by when", "Sickness absence"),
    ("how long can my partner stay home after our baby is born", "Parental leave"),
    ("money for training courses and conferences", "Learning and development budget"),
    ("when does my salary go up after the yearly evaluation", "Performance reviews and pay"),
    ("what is the most I can spend on a room for the night", "Business travel and expenses"),
    ("who signs off on buying a new machine costing forty thousand", "Purchasing and approvals"),
    ("a supplier wants to take me to an expensive dinner", "Gifts and hospitality"),
    ("how did the company's earnings compare with the year before", "Financial results"),
    ("which business line grew the quickest", "Segment performance"),
    ("my laptop was stolen on the train, what now", "Information security"),
    ("how fast must a leak of someone's private information be reported", "Personal data and privacy"),
    ("how do I report wrongdoing without giving my name", "Code of conduct and speaking up"),
    ("what does the firm do about not having enough people to drive lorries", "Risks and outlook"),
    ("how much pollution did the trucks cause this year", "Sustainability and the electric fleet"),
    ("what is the company expected to earn next year", "Risks and outlook"),
]

KEYWORD: list[tuple[str, str]] = [
    ("core hours 10:00 to 15:00", "Working hours and flexible time"),
    ("Shiftboard rosters", "Working hours and flexible time"),
    ("home office allowance 400 euros", "Remote and hybrid work"),
    ("doctor's certificate", "Sickness absence"),
    ("statutory sick pay", "Sickness absence"),
    ("phased return 60 percent", "Parental leave"),
    ("volunteering day", "Annual leave"),
    ("TravelDesk portal", "Business travel and expenses"),
    ("Spendly expense claims", "Business travel and expenses"),
    ("corporate card monthly limit", "Corporate cards"),
    ("three written quotes", "Purchasing and approvals"),
    ("gifts register", "Gifts and hospitality"),
    ("extension 4444", "Information security"),
    ("SpeakUp hotline", "Code of conduct and speaking up"),
    ("SafeTrack near miss", "Health and safety in the warehouse"),
    ("Gdansk cross-dock", "Letter from the chief executive"),
    ("EBIT operating margin", "Financial results"),
    ("net promoter score", "Customers and service quality"),
    ("CMR Convention special drawing rights", "Liability and claims"),
    ("ADR certificate UN number", "Dangerous goods"),
    ("recovery fee of 40 euros", "Payment terms and late payment"),
    ("lost-time injury frequency rate", "People"),
]


def text() -> str:
    return TEXT_PATH.read_text(encoding="utf-8")


def query_sets() -> dict[str, list[tuple[str, str]]]:
    """{'paraphrase', 'keyword', 'paraphrase held-out', 'keyword held-out'} -> (question, section)."""
    return {"paraphrase": PARAPHRASE[:-HELD_OUT], "keyword": KEYWORD[:-HELD_OUT],
            "paraphrase held-out": PARAPHRASE[-HELD_OUT:], "keyword held-out": KEYWORD[-HELD_OUT:]}
