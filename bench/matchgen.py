"""Generated customers with known truth: typos, suffix variants (spelled with dots and spaces too),
accents dropped, reordered words, shared domains."""

from __future__ import annotations

import random

from app.domain.models import Party
from app.domain.text import name_key, strip_accents

WORDS = ("Harbour Summit Maple Granite Willow Copper Northwind Bluebell Riverside Oakridge Pioneer Lighthouse "
         "Evergreen Silverline Redwood Meadow Falcon Orchard Sterling Beacon Juniper Cedar Atlas Horizon Aurora "
         "Kestrel Thistle Ember Alder Quarry Saffron Marigold Larch Heron Brook Fjord Tundra Cobalt Indigo Vale "
         "Crest Hollow Ridge Grove Stone Field Bridge Mill Castle Forge Anchor Compass Lantern Meridian Summit "
         "Zephyr Aspen Birch Elm Fern Glen Hazel Ivy Laurel Moss Pine Rowan Sage Thorn Wren Yarrow "
         "Société Générale Müller Crème Zürich Côte Señora Île Fjällräven Brûlée Mañana Château").split()
TRADES = ("Bakery Joinery Plumbing Design Consulting Logistics Dental Florists Print Studio Roasters Analytics "
          "Landscaping Electrical Catering Architects Veterinary Brewing Ceramics Tutoring Fitness Motors Optics "
          "Textiles Timber Marine Software Audio Labs Capital Partners Clinic Surveyors Pharmacy Foods").split()
SUFFIX = ("Ltd", "Limited", "Inc", "LLC", "GmbH", "Pty Ltd", "Co", "SARL", "SpA", "SA", "")
# The same legal forms as people also type them: with dots, with spaces between the letters, accented.
SPELLED = {"Ltd": ("Ltd.",), "Inc": ("Inc.",), "LLC": ("L.L.C.",), "GmbH": ("G.m.b.H.", "G. m. b. H."),
           "Pty Ltd": ("Pty. Ltd.",), "Co": ("Co.",), "SARL": ("S.A.R.L.", "S. A. R. L.", "S.à r.l."),
           "SpA": ("S.p.A.", "S. p. A."), "SA": ("S.A.", "S. A.")}


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.randrange(3)
    if op == 0:
        return word[:i] + word[i + 1:]
    if op == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + rng.choice("aeiourstn") + word[i:]


def entities(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    out, used = [], set()
    while len(out) < n:
        words = [*rng.sample(WORDS, rng.choice((1, 2, 2, 3))), rng.choice(TRADES)]
        base = " ".join(words)
        key = (base, rng.randrange(10**6))
        signature = " ".join(sorted(base.lower().split()))
        if signature in used:  # distinct entities have distinct names, as distinct companies do
            continue
        used.add(signature)
        # a domain is typed without accents (ledgers refuse accented addresses): 'societegenerale.com'
        domain = (strip_accents(base).lower().replace(" ", "") + rng.choice((".com", ".co.uk", ".de", ".io"))
                  + str(key[1] % 97))
        out.append({"name": base, "suffix": rng.choice(SUFFIX), "domain": domain,
                    "tax": f"GB{rng.randrange(10**8, 10**9)}" if rng.random() < 0.3 else None,
                    "phone": f"+44 20 {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}"
                    if rng.random() < 0.5 else None})
    return out


def variant(rng: random.Random, e: dict, *, messy: bool) -> Party:
    name = e["name"]
    if messy:
        roll = rng.random()
        words = name.split()
        if roll < 0.3:
            k = rng.randrange(len(words))
            words[k] = _typo(rng, words[k])
        elif roll < 0.45 and len(words) > 1:
            words = [words[-1], *words[:-1]]
        name = " ".join(words)
        if rng.random() < 0.5:  # typed without accents ('Societe Generale')
            name = strip_accents(name)
        suffix = rng.choice(SUFFIX)
        if suffix in SPELLED and rng.random() < 0.5:
            suffix = rng.choice(SPELLED[suffix])
        name = f"{name} {suffix}".strip() if rng.random() < 0.8 else name.upper()
    else:
        name = f"{name} {e['suffix']}".strip()
    email = f"{rng.choice(('accounts', 'billing', 'info', 'hello'))}@{e['domain']}" if rng.random() < 0.8 else None
    return Party("company", name, email=email, phone=e["phone"] if rng.random() < 0.7 else None,
                 tax_id=e["tax"] if rng.random() < 0.8 else None)


def sides(n: int, overlap: float = 0.5, seed: int = 1) -> tuple[list, list, set[tuple[str, str]]]:
    """n records on each side; ``overlap`` of them are the same entity (truth returned)."""
    rng = random.Random(seed + 1)
    ents = entities(int(n * (2 - overlap)) + 10, seed)
    shared = int(n * overlap)
    left = [(f"L{i}", variant(rng, ents[i], messy=False)) for i in range(n)]
    right, truth = [], set()
    for i in range(shared):
        right.append((f"R{i}", variant(rng, ents[i], messy=True)))
        truth.add((f"L{i}", f"R{i}"))
    for i in range(n - shared):
        right.append((f"R{shared + i}", variant(rng, ents[n + i], messy=True)))
    taken = {name_key(e["name"]) for e in ents}  # a trap never shares its name with a generated entity
    for i, (a, b, same) in enumerate(traps(max(len(TRAPS), n // 20), seed, taken)):
        left.append((f"LT{i}", a))
        right.append((f"RT{i}", b))
        if same:
            truth.add((f"LT{i}", f"RT{i}"))
    rng.shuffle(right)
    return left, right, truth


# Pairs whose names differ only in a symbol or a digit (different businesses: linked, they would bill the
# wrong customer), same names told apart by their email domains, and look-alikes of one name (the same
# business: invisible characters, width forms, direction marks). {w}/{v}: words, {t}: a trade, {k}/{j}: numbers.
TRAPS: tuple[tuple[str, str, bool], ...] = (
    ("{w} C# {t}", "{w} C++ {t}", False),
    ("{w} & {v} {t}", "{w} + {v} {t}", False),
    ("{w}&{v}", "{w}+{v}", False),
    ("{w} {t} Unit {k}", "{w} {t} Unit {j}", False),
    ("{w} {t} No. {k}", "{w} {t} No {j}", False),
    ("{w} {t} {k}", "{w} {t} {j}", False),
    ("\t={k}+{k}", "-{k}+{k}", False),
    ("\uff1d{k}+{k} {t}", "-{k}+{k} {t}", False),
    ("{w}-{v} {t}", "{w}={v} {t}", False),
    ("{w} {t} @domain", "{w} {t} Ltd @other", False),
    ("{w}\u200b{v} {t}", "{w}{v} {t}", True),
    ("{w} {t} Unit 1", "{w} {t} Unit 7", False),
    ("{w} {v} {t}", "\ufeff{w} {v} {t}", True),
    ("{w} {v} {t} Ltd", "\u200e{w} {v} {t}\u200f Limited", True),
    ("{w} {v} {t}", "{W} {V} {T}", True),
)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def traps(count: int, seed: int = 1, taken: set[str] | None = None) -> list[tuple[Party, Party, bool]]:
    """``count`` labelled pairs drawn from TRAPS in turn (each a name never used elsewhere, nor in ``taken``)."""
    rng = random.Random(seed + 7)
    out, used = [], set(taken or ())
    while len(out) < count:
        template_a, template_b, same = TRAPS[len(out) % len(TRAPS)]
        w, v = rng.sample(WORDS, 2)
        t = rng.choice(TRADES)
        k = rng.randrange(1, 10_000)
        j = k + rng.randrange(1, 9)
        values = {"w": w, "v": v, "t": t, "k": k, "j": j}
        wide = {key.upper(): _fullwidth(str(val)) for key, val in values.items()}
        a, b = (x.format(**values, **wide) for x in (template_a, template_b))
        keys = {name_key(a), name_key(b)}
        if keys & used:
            continue
        used |= keys
        email_a = email_b = None
        if "@domain" in a:  # the same name, each with its own company domain
            a, b = a.replace(" @domain", ""), b.replace(" @other", "")
            email_a, email_b = f"accounts@{w.lower()}{k}.com", f"accounts@{w.lower()}{j}.co.uk"
        out.append((Party("company", a, email=email_a), Party("company", b, email=email_b), same))
    return out
