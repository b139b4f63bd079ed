"""Small helpers the demo's generators share: a weighted seeded draw and ASCII name folding."""
import random
import unicodedata


def weighted(rng: random.Random, pairs):
    """One value of (value, weight) pairs, drawn with `rng` in proportion to the weights."""
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for value, weight in pairs:
        x -= weight
        if x < 0:
            return value
    return pairs[-1][0]


def ascii_name(name: str) -> str:
    """A name folded to lower-case ASCII letters and digits for an email's local part
    ("Müller-Lüdenscheid" → "muellerluedenscheid")."""
    folded = name.lower()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        folded = folded.replace(a, b)
    folded = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum())
