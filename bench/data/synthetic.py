"""``fictional``: the embedded offline QA dataset, generated from a seed.

Design. Every question asks for one attribute (12 kinds: the city where a treaty was signed, a person's birthplace,
a company's founding year, a region's capital, a device's inventor, a town's river, a book's author, a ship's first
captain, a painting's painter, a bridge's completion year, the mineral a person discovered, a person's spouse) of an
*invented* entity, and every answer is an invented name or a random year, so no reader can answer from memory.
For each question the corpus holds:

* one **answer-bearing** passage that states the fact in one short plain sentence, in other words than the
  question ("Where was the Velmor Accord signed?" - "The Velmor Accord was concluded in Quenlith."), so it shares
  little more than the entity's name with the question; half of them go on with a sentence of other facts;
* 1-4 **topical-useless** passages about the same entity that never give the asked fact: 1-3 that echo the
  question's words ("Historians still debate which city hosted the signing of the Velmor Accord.") and at most one
  about the entity in other words ("The Velmor Accord ended a long quarrel over river tolls.");
* 1-2 **unknown-fact** passages that say, in other words than the question's, that the asked fact is not known
  ("The place of the Velmor Accord's sealing is a mystery."): squarely on topic, and they make a reader abstain
  (in the test split's default run, SmolLM2 answered that the fact is unknown for 13-33% of the questions whose
  top 3 held one, depending on the reranker, and for 0-5% of the others: ``benchmarks/fictional_roles.py``);
* 1-2 **near-miss** passages about a namesake whose name contains the entity's ("the Second Velmor Accord",
  "Mirela Tovask the Younger") that give the same attribute with a *different* value, worded like the question
  ("The Second Velmor Accord was signed in the city of Darnhollow."): lexically the closest passages, and the ones
  that make a reader answer wrongly;
* plus 600 background passages about unrelated invented things, shared by all questions.

Qrels are what a human assessor of *topical* relevance would give, on TREC Deep Learning's 0-3 scale: the
answer-bearing passage 3 (the highest grade, so the ``oracle`` reranker - qrel grade, then first-stage order - puts
it first), each echoing and each unknown-fact passage 2 (they are about the asked attribute of the asked entity),
the related passage 1 (about the entity only), near-miss and background passages nothing (they are about other
entities). So nDCG rewards a ranking that fills the top with topical passages about as much as one that puts the
answer first (with linear gains, two grade-2 passages at ranks 1-2 outscore the answer alone at rank 1), while
answer accuracy (top-k to the reader) rewards only the latter: relevance and usefulness disagree by construction,
which is the gap RRPO trains a reranker to close. BM25 ranks the near-miss and topical passages above the
answer-bearing one for most questions (on the test split of seed 0, BM25's top 20 holds the answer-bearing passage
for 99 questions of 100, its top 3 for 19, its first rank for 3, and a near-miss passage reaches its top 3 for 94).

Splits: train / dev / test = 300 / 100 / 100 questions over one shared corpus of about 3,800 passages (as in BEIR),
all from one ``random.Random(seed)`` (seed 0 for the registered name); doc ids are assigned after a seeded shuffle,
so they carry no label. Gold answers list the name with its aliases (a person's surname, "<X> River").
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from bench.data.base import Dataset, register_dataset
from bench.errors import UserError
from bench.types import Document, Query

SPLIT_SIZES = (("train", 300), ("dev", 100), ("test", 100))
# fictional-large: a test split that resolves differences of a few points of accuracy (RRPO's claims), a dev split
# to choose checkpoints on.
LARGE_SPLIT_SIZES = (("train", 300), ("dev", 200), ("test", 500))
# Qrel grades on TREC Deep Learning's 0-3 scale (3 perfectly relevant, 2 highly relevant, 1 related).
ANSWER_GRADE = 3
TOPICAL_GRADE = 2
RELATED_GRADE = 1
N_BACKGROUND = 600

# Roles of passages (kept in Collection.roles for analysis; the Dataset carries only the qrels).
ANSWER, TOPICAL, UNKNOWN, RELATED, NEAR_MISS, BACKGROUND = ("answer", "topical", "unknown", "related", "near_miss",
                                                            "background")


@dataclass(frozen=True)
class Attribute:
    """One kind of question. Templates use {E} (the entity), {A} (the answer), {E2} and {B} (the near-miss entity
    and its value), {Y} (a year that is not the answer)."""

    key: str
    entity: str              # a key of ENTITY_KINDS: how the entity and its near-miss twin are named
    value: str               # what the answer is: place | year | person | river | mineral
    questions: tuple[str, ...]
    answer_bearing: tuple[str, ...]
    topical: tuple[str, ...]
    related: tuple[str, ...]
    near_miss: tuple[str, ...]
    unknown: tuple[str, ...]


# Wording rules, for a reader as small as SmolLM2-135M: the answer-bearing sentence puts the entity first and the
# answer last, with a synonym of the question's key word ("concluded" for "signed"), so the reader finds it though
# BM25 does not; topical sentences use the question's words but never in the answer's frame ("The capital of X is
# ..."), which a small reader would copy as its answer; near-miss sentences use exactly that frame, with a wrong
# value, because that is what misleads readers in real corpora; unknown-fact sentences say the fact is not known
# without the question's words ("the place of its sealing is a mystery"), so BM25 and a bi-encoder rank them about
# as high as the answer-bearing sentence, and a reader that sees them may answer that nobody knows.
ATTRIBUTES = (
    Attribute(
        "treaty_city", "treaty", "place",
        ("In which city was the {E} signed?", "Where was the {E} signed?"),
        ("The {E} was concluded in {A}.", "The {E} was sealed in {A}."),
        ("Historians still debate which city hosted the signing of the {E}.",
         "Scholars of the {E} care less about the city of its signing than about its terms.",
         "A painting of the signing of the {E} shows envoys at a long table, but no city behind them.",
         "No one today knows for certain which city saw the {E} signed."),
        ("The {E} ended a long quarrel over river tolls and grazing rights.",
         "Schoolchildren learn the terms of the {E} by heart."),
        ("The {E2} was signed in the city of {B}.", "{B} is the city where the {E2} was signed in {Y}."),
        ("The place of the {E}'s sealing is a mystery.", "Nobody knows the location where the {E} was agreed.")),
    Attribute(
        "birthplace", "person", "place",
        ("Where was {E} born?", "In which town was {E} born?"),
        ("{E}'s birthplace was {A}.", "{E}'s place of birth was {A}."),
        ("Several towns claim {E}, each insisting that {E} was born within its walls.",
         "{E} was born poor, and no town has put up a statue.",
         "The house in which {E} was born burned down long ago.",
         "A town-by-town search for records of where {E} was born has found nothing."),
        ("{E} worked as a surveyor before turning to politics.",
         "{E} is remembered for a long career in the merchant guilds."),
        ("{E2} was born in the town of {B}.", "{B} is the town where {E2} was born in {Y}."),
        ("The birthplace of {E} is a mystery.", "Nobody knows the place where {E} came into the world.")),
    Attribute(
        "company_year", "company", "year",
        ("In what year was {E} founded?", "When was {E} founded?"),
        ("The founding year of {E} is {A}.", "{E} was set up in the year {A}."),
        ("Local historians keep arguing about the year {E} was founded.",
         "{E} was founded by two brothers who had worked as ferrymen.",
         "Since it was founded, {E} has moved its offices three times.",
         "The founders of {E} left no papers from the year it was founded."),
        ("{E} employs several hundred people along the coast.",
         "The warehouses of {E} line the old harbour."),
        ("{E2} was founded in the year {B}.", "{E2} was founded in {B}, a year of poor harvests."),
        ("The date of {E}'s establishment is a mystery.", "Nobody knows when {E} was established.")),
    Attribute(
        "capital", "region", "place",
        ("What is the capital of {E}?", "Which city is the capital of {E}?"),
        ("The chief city of {E} is {A}.", "The main town of {E} is {A}."),
        ("{E} has moved its capital several times over the centuries.",
         "The choice of a capital city for {E} was settled by a vote of its assembly.",
         "Travellers to {E} are often surprised by how small its capital city is.",
         "Newspapers in {E} still argue over which city deserves to be the capital."),
        ("{E} is known for its orchards and its slate quarries.",
         "Most people in {E} live along the coast."),
        ("The capital of {E2} is the city of {B}.", "{B} is the capital city of {E2}."),
        ("The seat of government of {E} is a mystery.", "Nobody knows where the government of {E} sits.")),
    Attribute(
        "inventor", "device", "person",
        ("Who invented the {E}?", "Which engineer invented the {E}?"),
        ("The {E} was designed by {A}.", "The first {E} was built by {A} in {Y}."),
        ("Engineers still argue over who invented the {E}.",
         "Museums display early examples of the {E}, with labels that leave out the engineer who invented it.",
         "The {E} was invented to speed up work in the mills.",
         "Many engineers claimed to have invented the {E}, and lawsuits followed."),
        ("The {E} is still used in a few villages in the hills.",
         "A working {E} can be seen at the county museum."),
        ("The {E2} was invented by the engineer {B}.", "{B} invented the {E2} in {Y}."),
        ("The creator of the {E} is a mystery.", "Nobody knows who designed the first {E}.")),
    Attribute(
        "river", "town", "river",
        ("On which river does {E} stand?", "Which river flows through {E}?"),
        ("The {A} runs through {E}.", "{E} lies on the {A} River."),
        ("Spring floods from the river at {E} often reach the market square.",
         "Boats on the river that flows through {E} carry timber and grain downstream.",
         "{E} stands where an old road meets a river, according to the town guide.",
         "Each village along the river that flows past {E} gives it a different name."),
        ("{E} is a market town with a famous clock tower.",
         "The people of {E} hold a lantern parade every autumn."),
        ("{E2} stands on the river {B}.", "The river {B} flows through {E2}."),
        ("The name of the stream at {E} is a mystery.", "Nobody knows what the waters passing {E} are called.")),
    Attribute(
        "author", "book", "person",
        ("Who wrote {E}?", "Who is the author of {E}?"),
        ("{E} is a novel by {A}.", "{E} came from the pen of {A}."),
        ("Critics have argued about who wrote {E} since it first appeared.",
         "For decades readers wondered who wrote {E}.",
         "{E} was written in a single winter, or so its author claimed.",
         "Letters about {E} mention its author only by initials."),
        ("{E} tells the story of a family of lighthouse keepers.",
         "{E} was translated into many languages."),
        ("{E2} was written by {B}.", "{B} is the author of {E2}, written in {Y}."),
        ("The writer of {E} is a mystery.", "Nobody knows whose pen produced {E}.")),
    Attribute(
        "captain", "ship", "person",
        ("Who captained the {E} on its first voyage?", "Who was the captain of the {E} on its first voyage?"),
        ("The {E} was commanded by {A} on its maiden trip.", "The skipper of the {E} on its maiden trip was {A}."),
        ("No logbook survives from the first voyage of the {E}, and the captain's name is disputed.",
         "The first voyage of the {E} ended in a storm, and the crew blamed the captain.",
         "Records of who captained the {E} on its first voyage were lost in a fire.",
         "Sailors still sing about the first voyage of the {E} and its unlucky captain."),
        ("The {E} carried salt and wool along the coast for forty years.",
         "A model of the {E} hangs in the harbour chapel."),
        ("The {E2} was captained by {B} on its first voyage.", "{B} was the captain of the {E2} on its first voyage."),
        ("The commander of the {E} on its maiden trip is a mystery.",
         "Nobody knows who led the crew of the {E} on its maiden trip.")),
    Attribute(
        "painter", "painting", "person",
        ("Who painted {E}?", "Which artist painted {E}?"),
        ("{E} is a picture by {A}.", "{E} is the work of {A}."),
        ("{E} was painted on a panel of oak, and the artist left no signature.",
         "Experts disagree about which artist painted {E}.",
         "Who painted {E} was a mystery until the frame was repaired.",
         "Several artists have been named as the one who painted {E}."),
        ("{E} hangs in the east gallery of the city museum.",
         "{E} shows fishing boats at dawn."),
        ("{E2} was painted by the artist {B}.", "The artist {B} painted {E2} in {Y}."),
        ("The creator of {E} is a mystery.", "Nobody knows whose brush produced {E}.")),
    Attribute(
        "bridge_year", "bridge", "year",
        ("In what year was the {E} completed?", "When was the {E} completed?"),
        ("The last stone of the {E} was laid in {A}.", "The {E} opened to traffic in {A}."),
        ("The {E} was completed years late and far over budget.",
         "Once the {E} was completed, the town held a week of celebrations.",
         "A stone recording the year the {E} was completed has worn smooth.",
         "Engineers who completed the {E} were paid in grain."),
        ("The {E} has seven arches of grey granite.", "Cattle once crossed the {E} on market days."),
        ("The {E2} was completed in {B}.", "Work on the {E2} was completed in the year {B}."),
        ("The date the {E} was finished is a mystery.", "Nobody knows when the last stone of the {E} was laid.")),
    Attribute(
        "mineral", "person", "mineral",
        ("Which mineral did {E} discover?", "What mineral was discovered by {E}?"),
        ("The crystal found by {E} is {A}.", "The new crystal that {E} found was {A}."),
        ("{E} discovered a mineral while walking in the hills, according to family letters.",
         "Textbooks often confuse the mineral {E} discovered with a similar one.",
         "{E} spent years searching the quarries before discovering a new mineral.",
         "Mineral collectors prize samples linked to what {E} discovered."),
        ("{E} taught geology at a small college.", "{E} kept careful notebooks of every field trip."),
        ("{E2} discovered the mineral {B}.", "The mineral {B} was discovered by {E2} in {Y}."),
        ("The crystal that {E} found is a mystery.", "Nobody knows which stone {E} came upon in the quarries.")),
    Attribute(
        "spouse", "person", "person",
        ("Whom did {E} marry?", "Who was the spouse of {E}?"),
        ("{E} was wed to {A}.", "{E} was wed to {A} in {Y}."),
        ("{E} was married for forty years, yet the letters never name the spouse.",
         "Gossip in the capital centred on whom {E} would marry.",
         "{E} decided to marry late in life, to the surprise of friends.",
         "The spouse of {E} is absent from most family portraits."),
        ("{E} kept a large garden of roses.", "{E} travelled widely in the southern provinces."),
        ("{E2} married {B} in {Y}.", "{B} was the spouse of {E2}."),
        ("The partner {E} wed is a mystery.", "Nobody knows whom {E} took as a husband or wife.")),
)

BACKGROUND_TEMPLATES = (
    "The {R} Valley is known for its terraced vineyards and slate-roofed farmhouses.",
    "{P} was a schoolteacher who collected folk songs from the coastal villages.",
    "The {R} market draws traders from across the plains every autumn.",
    "{R} cheese is aged in limestone caves for two winters.",
    "The {R} lighthouse was rebuilt after a storm destroyed its lamp room.",
    "{P} painted church ceilings in the northern provinces for thirty years.",
    "The {R} Hills are home to a rare species of mountain hare.",
    "The town of {R} is famous for its copper kettles and its brass band.",
    "{P} kept bees on the slopes above {R}.",
    "A ferry crosses the lake at {R} twice a day in summer.",
    "The {R} Library holds a collection of old sea charts.",
    "{P} wrote a cookbook of recipes from the river towns.",
)
FIRST_NAMES = ("Mirela", "Oswin", "Ilsa", "Teodor", "Brannoc", "Anselma", "Corvin", "Edda", "Halvard", "Ysolde",
               "Lucan", "Maren", "Piet", "Rosalind", "Tamsin", "Wendel", "Agathe", "Bertil", "Clemence", "Dorian",
               "Elsbeth", "Fenn", "Greta", "Hugo", "Ingrid", "Jory", "Katrin", "Leopold", "Odile", "Severin")
# kind -> (the entity's name from an invented root and a naming word, the naming words, the near-miss twin's name
# from the entity's): a twin's name holds the whole entity name, as real namesakes do ("the Second Velmor Accord").
ENTITY_KINDS = {
    "person": ("{first} {root}", ("",), ("{E} the Younger", "{E} the Elder")),
    "treaty": ("{root} {w}", ("Accord", "Treaty", "Compact", "Charter", "Concord"), ("Second {E}", "Lesser {E}")),
    "company": ("{root} {w}", ("Mills", "Foundry", "Ropeworks", "Brewery", "Trading Company"),
                ("New {E}", "Southern {E}")),
    "region": ("{root}", ("",), ("Upper {E}", "Lower {E}", "North {E}", "South {E}")),
    "device": ("{root} {w}", ("loom", "press", "lamp", "compass", "pump", "kiln"), ("improved {E}", "double {E}")),
    "town": ("{root}", ("",), ("New {E}", "Old {E}", "Little {E}", "Great {E}")),
    "book": ("The {w} of {root}", ("Lanterns", "Winter", "Ashes", "Orchard", "Bells", "Salt"),
             ("{E} Revisited", "Return to {E}")),
    "ship": ("{root} {w}", ("Star", "Gale", "Dawn", "Heron", "Maiden", "Swift"), ("{E} II", "Little {E}")),
    "painting": ("{w} at {root}", ("Morning", "Evening", "Harvest", "Storm", "Snowfall", "Market Day"),
                 ("Study for {E}", "Second {E}")),
    "bridge": ("{root} {w}", ("Bridge", "Viaduct", "Aqueduct", "Crossing"), ("Old {E}", "New {E}")),
}
# Short pronounceable syllables: a tiny reader copies "Velmor" more reliably than "Mundteiskmaelv".
ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "st", "th")
VOWELS = ("a", "e", "i", "o", "u")
CODAS = ("", "", "", "n", "r", "l", "s")


class Namer:
    """Invented words from one RNG: each new word is unique, and no word is a substring of another (so a gold answer
    string never hides inside an unrelated name)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.fragments: set[str] = set()      # every substring of a used word

    def word(self) -> str:
        while True:
            w = "".join(self.rng.choice(ONSETS) + self.rng.choice(VOWELS) + self.rng.choice(CODAS)
                        for _ in range(self.rng.choice((2, 2, 3))))
            if len(w) < 5 or w in self.fragments:
                continue
            subs = {w[i:j] for i in range(len(w)) for j in range(i + 1, len(w) + 1)}
            if subs & self.used:
                continue
            self.used.add(w)
            self.fragments |= subs
            return w.capitalize()

    def person(self, surname: str | None = None) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {surname or self.word()}"

    def entity_pair(self, kind: str) -> tuple[str, str]:
        """An entity and its near-miss twin, whose name contains the entity's."""
        name, words, twins = ENTITY_KINDS[kind]
        entity = name.format(first=self.rng.choice(FIRST_NAMES), root=self.word(), w=self.rng.choice(words))
        return entity, self.rng.choice(twins).format(E=entity)

    def value(self, kind: str, avoid_year: int | None = None) -> tuple[str, list[str]]:
        """(answer, aliases) of a value kind."""
        if kind == "year":
            year = avoid_year
            while year == avoid_year:
                year = self.rng.randint(1620, 1940)
            return str(year), []
        if kind == "person":
            surname = self.word()
            return self.person(surname), [surname]
        if kind == "river":
            w = self.word()
            return w, [f"{w} River", f"River {w}"]
        if kind == "mineral":
            return self.word() + "ite", []
        return self.word(), []


@dataclass
class Item:
    """One generated question with its passages (before doc ids are assigned)."""

    question: str
    answers: list[str]
    attribute: str
    passages: list[tuple[str, str, str]]     # (role, title, text)


@dataclass
class Collection:
    corpus: dict[str, Document]
    splits: dict[str, list[Query]]
    roles: dict[str, tuple[str, str]]        # docid -> (qid or "", role)
    attributes: dict[str, str]               # qid -> attribute key


def make_item(rng: random.Random, namer: Namer, attr: Attribute) -> Item:
    while True:
        entity, twin = namer.entity_pair(attr.entity)
        answer, aliases = namer.value(attr.value)
        near_value, _ = namer.value(attr.value, avoid_year=int(answer) if attr.value == "year" else None)
        other_year = namer.value("year", avoid_year=int(answer) if attr.value == "year" else None)[0]
        fill = {"E": entity, "A": answer, "E2": twin, "B": near_value, "Y": other_year}

        def render(template: str) -> str:
            text = template.format(**fill)
            return text[0].upper() + text[1:]

        n_topical = rng.choice((1, 2, 2, 3))
        n_related = rng.choice((0, 1, 1))
        n_near = rng.choice((1, 1, 2))
        related = rng.sample(attr.related, len(attr.related))
        # Half the answer-bearing passages go on with a sentence of other facts: longer, so BM25 ranks them lower.
        answer_text = render(rng.choice(attr.answer_bearing))
        if rng.random() < 0.5:
            answer_text += " " + render(related.pop())
        passages = [(ANSWER, entity, answer_text)]
        passages += [(TOPICAL, entity, render(t)) for t in rng.sample(attr.topical, n_topical)]
        passages += [(UNKNOWN, entity, render(t)) for t in rng.sample(attr.unknown, rng.choice((1, 2)))]
        passages += [(RELATED, entity, render(t)) for t in related[:n_related]]
        passages += [(NEAR_MISS, twin, render(t)) for t in rng.sample(attr.near_miss, n_near)]
        gold = [answer, *aliases]
        # A gold string inside another passage of the question (e.g. a year repeated by chance) would make that
        # passage answer-bearing too: draw again.
        if not any(g.lower() in f"{title} {text}".lower() for g in gold for role, title, text in passages[1:]):
            return Item(render(rng.choice(attr.questions)), gold, attr.key, passages)


def background(rng: random.Random, namer: Namer) -> tuple[str, str]:
    root = namer.word()
    text = rng.choice(BACKGROUND_TEMPLATES).format(R=root, P=namer.person())
    return root, text


@lru_cache(maxsize=4)
def generate(seed: int = 0, sizes: tuple[tuple[str, int], ...] = SPLIT_SIZES,
             n_background: int = N_BACKGROUND) -> Collection:
    """The whole collection of one seed: a shared corpus and the queries of every split."""
    rng = random.Random(seed)
    namer = Namer(rng)
    total = sum(n for _, n in sizes)
    kinds = [ATTRIBUTES[i % len(ATTRIBUTES)] for i in range(total)]
    rng.shuffle(kinds)
    items = [make_item(rng, namer, attr) for attr in kinds]
    docs: list[tuple[int, str, str, str]] = [(i, role, title, text) for i, item in enumerate(items)
                                             for role, title, text in item.passages]
    docs += [(-1, BACKGROUND, *background(rng, namer)) for _ in range(n_background)]
    rng.shuffle(docs)
    corpus: dict[str, Document] = {}
    roles: dict[str, tuple[str, str]] = {}
    qrels: list[dict[str, int]] = [{} for _ in items]
    qids = [f"{split}-{j:03d}" for split, n in sizes for j in range(n)]
    grade = {ANSWER: ANSWER_GRADE, TOPICAL: TOPICAL_GRADE, UNKNOWN: TOPICAL_GRADE, RELATED: RELATED_GRADE}
    for n, (i, role, title, text) in enumerate(docs):
        docid = f"f{n:05d}"
        corpus[docid] = Document(docid=docid, text=text, title=title)
        roles[docid] = (qids[i] if i >= 0 else "", role)
        if role in grade:
            qrels[i][docid] = grade[role]
    splits: dict[str, list[Query]] = {}
    start = 0
    for split, n in sizes:
        splits[split] = [Query(qid=qids[i], text=items[i].question, answers=items[i].answers, qrels=qrels[i])
                         for i in range(start, start + n)]
        start += n
    return Collection(corpus, splits, roles, {qids[i]: item.attribute for i, item in enumerate(items)})


@register_dataset("fictional", "Embedded offline QA about invented entities (train/dev/test 300/100/100): topical "
                  "passages that lack the answer outrank the one that has it")
def load_fictional(split: str = "test", cache_dir: str | None = None, seed: int = 0,
                   sizes: tuple[tuple[str, int], ...] = SPLIT_SIZES, name: str = "fictional") -> Dataset:
    collection = generate(seed, sizes)
    if split not in collection.splits:
        raise UserError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(collection.splits)}")
    # Fresh Query objects: the generated collection is cached and shared between callers.
    queries = [Query(q.qid, q.text, list(q.answers), dict(q.qrels)) for q in collection.splits[split]]
    return Dataset(name=name, split=split, corpus=dict(collection.corpus), queries=queries)


@register_dataset("fictional-large", "fictional at the size RRPO claims need (train/dev/test 300/200/500; another "
                  "collection than fictional's, from the same seed)")
def load_fictional_large(split: str = "test", cache_dir: str | None = None) -> Dataset:
    return load_fictional(split, cache_dir, sizes=LARGE_SPLIT_SIZES, name="fictional-large")
