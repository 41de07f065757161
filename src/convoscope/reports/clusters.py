"""Handoff texts grouped into themes by word statistics (issue 27 point 2): scikit-learn's TF-IDF and a latent
semantic space, then one average-linkage tree (SciPy's, as scikit-learn's AgglomerativeClustering grows it) cut at
the number of themes whose silhouette is highest. No model is downloaded and nothing is learnt beyond the texts
given; nothing is random but the latent space's seeded start: the same texts give the same themes.

What a theme is and is not is said in docs/reports.md ("handoff-themes"): words that occur together, not an
understanding of the handoff. This module knows texts and who wrote them only; `reports/themes.py` says which texts
and counts the handoffs behind each theme.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

# A term counts, and may name a theme, when at least this many customers' handoffs use it: no one customer's words
# (a name, an address) name a theme, however often they wrote them. Words are letters only (three or more), so no
# order number or phone number is a term either.
MIN_CUSTOMERS_PER_TERM = 3
# A term more than this share of the handoffs use (when there are at least MANY of them) says nothing of why any one
# was handed off: left out, like English stop words and the words handoff texts say whatever the cause.
MAX_HANDOFF_SHARE, MANY = 0.8, 20
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{3,}\b"
HANDOFF_WORDS = ("customer", "customers", "team", "member", "members", "wants", "want", "needs", "need", "asked",
                 "asks", "please", "thanks", "thank", "hi", "hello")
FIELD_BREAK = "\n"  # between a handoff's texts (reason, rationale, message): no pair of words spans two
MAX_THEMES = 20
# A cut whose smallest theme holds fewer handoffs than this share, or than MIN_THEME_HANDOFFS, is not chosen.
MIN_THEME_SHARE, MIN_THEME_HANDOFFS = 0.01, 2
MAX_TREE_TEXTS = 3000  # distinct texts the tree is grown on (its memory grows with their square); the others join the
# theme whose centre is nearest
SEED = 27  # the latent space's start, and which distinct texts the tree is grown on when there are more
COMPONENTS = 60  # dimensions of the latent space
LABEL_TERMS = 3
DISTINCT = 1.2  # a label's term weighs at least this much more in its theme than over all handoffs
NO_WORDS = "(no shared words)"


@dataclass
class Themes:
    """Documents grouped: each document's theme (0 = the largest theme, and so on), how typical of its theme it is
    (cosine similarity to the theme's centre), and each theme's label, its top terms."""

    theme: np.ndarray
    typical: np.ndarray
    labels: list[str]
    model: _Model | None  # what assigns other documents to these themes; None when there was nothing to learn

    def assign(self, texts: pa.Array) -> np.ndarray:
        """The theme each of `texts` (another period's) is nearest to; each distinct text placed once."""
        if self.model is None or not len(texts):
            return np.zeros(len(texts), dtype=np.int64)
        unique, inverse, _ = _unique_rows(texts)
        return self.model.nearest(self.model.space(unique))[inverse]


@dataclass
class _Model:
    vectorizer: Any
    svd: Any
    centres: np.ndarray  # one row per theme, in theme order, unit length (zero: the theme of texts with no term)
    wordless: int | None = None  # that theme's number, when there is one

    def space(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        vectors = self.vectorizer.transform(texts)
        return normalize(self.svd.transform(vectors) if self.svd is not None else vectors.toarray())

    def nearest(self, points: np.ndarray) -> np.ndarray:
        """The theme whose centre is nearest each point; a point of no term goes to the theme of those, if any."""
        nearest = np.argmax(points @ self.centres.T, axis=1)
        if self.wordless is not None:
            nearest[~points.any(axis=1)] = self.wordless
        return nearest


def group(texts: pa.Array, owners: np.ndarray, *, max_themes: int = MAX_THEMES) -> Themes:
    """Group `texts` (one per handoff, its fields joined by FIELD_BREAK; `owners[i]` is a number standing for who
    wrote text i, its customer) into themes; the same texts and owners, in any order, give the same grouping."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize
    from threadpoolctl import threadpool_limits

    n = len(texts)
    nothing = Themes(theme=np.zeros(n, dtype=np.int64), typical=np.zeros(n), labels=[NO_WORDS] if n else [],
                     model=None)
    # Identical texts (a canned reason, "agent") are one point, weighted by their count: fewer texts to analyse,
    # and no dependence on their order. Each distinct text is analysed once.
    unique, inverse, counts = _unique_rows(texts)
    vectorizer = _Vectorizer.fit(unique, counts, _writers(inverse, owners, len(unique)))
    if vectorizer is None:  # no term used by enough customers (few handoffs, or nothing in common)
        return nothing
    rows = vectorizer.rows
    # The latent space joins words that occur together; with no more distinct texts or terms than its dimensions
    # there is nothing to join, and squeezing a few texts into fewer dimensions would only bend their distances.
    few = min(rows.shape) <= COMPONENTS
    svd = None if few else TruncatedSVD(n_components=COMPONENTS, random_state=SEED)
    with threadpool_limits(limits=1):  # one thread: sums in one order, so the same bits on any machine's cores
        space = normalize(svd.fit_transform(rows) if svd is not None else rows.toarray())
    # A text with no term (a takeover with no reason, "ok") has no place in the space: such texts are a theme of their
    # own, NO_WORDS, and the tree grows on the others.
    worded = np.flatnonzero(rows.getnnz(axis=1) > 0)
    grown = worded[_tree_texts(counts[worded])]
    cut = _best_cut(space[grown], counts[grown], max_themes)
    themes = int(cut.max()) + 1
    centres = normalize(np.vstack([space[grown][cut == c].mean(axis=0) for c in range(themes)]))
    model = _Model(vectorizer, svd, centres)
    cluster = model.nearest(space)
    cluster[grown] = cut
    wordless = rows.getnnz(axis=1) == 0
    if wordless.any():
        cluster[wordless] = themes
        centres = np.vstack([centres, np.zeros(centres.shape[1])])
    sizes = np.bincount(cluster, weights=counts, minlength=centres.shape[0])
    order = np.lexsort((np.arange(sizes.shape[0]), -sizes))  # theme 0 is the largest; ties in the tree's order
    theme_of = np.empty_like(order)
    theme_of[order] = np.arange(order.shape[0])
    model.centres = centres[order]
    model.wordless = int(theme_of[themes]) if wordless.any() else None
    theme = theme_of[cluster]
    typical = np.einsum("ij,ij->i", space, model.centres[theme])
    labels = _labels(vectorizer.terms, rows, counts, theme, model.centres.shape[0])
    return Themes(theme=theme[inverse], typical=typical[inverse], labels=labels, model=model)


def _writers(inverse: np.ndarray, owners: np.ndarray, texts: int) -> Any:
    """A matrix of customers × distinct texts: 1 where the customer wrote that text."""
    import scipy.sparse as sp

    customer = np.unique(owners, return_inverse=True)[1].reshape(-1)
    wrote = sp.csr_matrix((np.ones(inverse.shape[0]), (customer, inverse)),
                          shape=(int(customer.max()) + 1 if customer.size else 0, texts))
    wrote.data[:] = 1  # a customer who wrote a text twice wrote it
    return wrote


@dataclass
class _Vectorizer:
    """TF-IDF of the distinct texts over the terms that count, computed from one analysis of each distinct text:
    scikit-learn's CountVectorizer counts the terms, its TfidfTransformer weighs them with each term's rarity over
    every handoff (a distinct text counted as often as handoffs carry it). `rows` are the distinct texts' vectors."""

    counter: Any  # the analysis, restricted to `terms`, for texts of another period
    weigher: Any
    terms: np.ndarray
    rows: Any

    @classmethod
    def fit(cls, unique: list[str], counts: np.ndarray, writers: Any) -> _Vectorizer | None:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

        analyzer = _analyzer()
        counter = CountVectorizer(analyzer=analyzer, dtype=np.float64)
        try:
            found = counter.fit_transform(unique).tocsc()
        except ValueError:  # no term at all
            return None
        used = found.copy()
        used.data[:] = 1
        customers = np.asarray(((writers @ used) > 0).sum(axis=0)).ravel()
        handoffs = np.asarray(used.T @ counts).ravel()
        kept = customers >= MIN_CUSTOMERS_PER_TERM
        if counts.sum() >= MANY:
            kept &= handoffs <= MAX_HANDOFF_SHARE * counts.sum()
        if not kept.any():
            return None
        terms = counter.get_feature_names_out()[kept]  # in code point order, as CountVectorizer sorts them
        counted = found[:, kept].tocsr()
        weigher = TfidfTransformer(sublinear_tf=True).fit(counted)
        total = counts.sum()  # smoothed inverse document frequency, as TfidfVectorizer's, but over every handoff
        weigher.idf_ = np.log((1 + total) / (1 + handoffs[kept])) + 1
        return cls(counter=CountVectorizer(analyzer=analyzer, vocabulary=list(terms), dtype=np.float64),
                   weigher=weigher, terms=terms, rows=weigher.transform(counted))

    def transform(self, texts: Sequence[str]) -> Any:
        return self.weigher.transform(self.counter.transform(texts))


def _analyzer() -> Callable[[str], list[str]]:
    """A text's terms: words and pairs of words of each field on its own, lower case, accents stripped, without
    stop words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    field = TfidfVectorizer(lowercase=True, strip_accents="unicode", token_pattern=TOKEN_PATTERN, ngram_range=(1, 2),
                            stop_words=sorted(ENGLISH_STOP_WORDS | set(HANDOFF_WORDS))).build_analyzer()
    return lambda text: [term for part in text.split(FIELD_BREAK) for term in field(part)]


def _unique_rows(texts: pa.Array) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The distinct texts in code point order, each text's place among them, and how many texts each is. Arrow's
    hash finds the distinct texts (sorting half a million Python strings took 0.9 s at 10M events), Python's own
    comparison orders them, as `numpy.unique` did."""
    encoded = texts.dictionary_encode()
    found = encoded.dictionary.to_pylist()
    order = sorted(range(len(found)), key=found.__getitem__)
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))
    inverse = place[encoded.indices.to_numpy(zero_copy_only=False)]
    counts = np.bincount(inverse, minlength=len(order)).astype(np.float64)
    return [found[i] for i in order], inverse, counts


def _tree_texts(counts: np.ndarray) -> np.ndarray:
    """The distinct texts the tree is grown on: all, or MAX_TREE_TEXTS drawn (seeded) as often as handoffs use them."""
    if counts.shape[0] <= MAX_TREE_TEXTS:
        return np.arange(counts.shape[0])
    rng = np.random.default_rng(SEED)
    return np.sort(rng.choice(counts.shape[0], MAX_TREE_TEXTS, replace=False, p=counts / counts.sum()))


def _best_cut(space: np.ndarray, weights: np.ndarray, max_themes: int) -> np.ndarray:
    """The average-linkage tree of the points (cosine distance), cut at every number of themes from 2 to `max_themes`
    (and no more than the points); the cut with the highest silhouette wins (fewer themes on a tie), among those
    whose smallest theme holds MIN_THEME_SHARE and MIN_THEME_HANDOFFS of the handoffs. One theme when no cut
    qualifies. Themes numbered from 0."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist, squareform

    points = space.shape[0]
    if points < 2:
        return np.zeros(points, dtype=np.int64)
    distances = np.clip(pdist(space, metric="cosine"), 0, None)
    tree = linkage(distances, method="average")
    square = squareform(distances)
    smallest = max(MIN_THEME_SHARE * weights.sum(), MIN_THEME_HANDOFFS)
    best: tuple[float, np.ndarray] = (-np.inf, np.zeros(points, dtype=np.int64))
    for k in range(2, min(max_themes, points) + 1):
        cut = fcluster(tree, k, criterion="maxclust") - 1
        if cut.max() < 1 or np.bincount(cut, weights=weights).min() < smallest:
            continue
        score = _silhouette(square, cut, weights)
        if score > best[0] + 1e-9:
            best = (score, cut)
    return best[1]


def _silhouette(distances: np.ndarray, cut: np.ndarray, weights: np.ndarray) -> float:
    """The silhouette of a cut with each distinct text counted as often as handoffs use it: a text's copies are at
    distance 0 from it, in its theme, so that canned texts used by many handoffs make tight themes; a handoff alone
    in its theme scores 0."""
    themes = int(cut.max()) + 1
    member = np.zeros((cut.shape[0], themes))
    member[np.arange(cut.shape[0]), cut] = weights
    sums = distances @ member  # each point's weighted distance to every theme
    sizes = member.sum(axis=0)
    own = sizes[cut] - 1  # the other handoffs of its theme, its own copies included
    inside = np.where(own > 0, sums[np.arange(cut.shape[0]), cut] / np.maximum(own, 1), 0.0)
    outside = np.where(np.arange(themes) == cut[:, None], np.inf, sums / sizes).min(axis=1)
    score = np.where(own > 0, (outside - inside) / np.maximum(np.maximum(inside, outside), 1e-12), 0.0)
    return float((score * weights).sum() / weights.sum())


def _labels(terms: np.ndarray, rows: Any, counts: np.ndarray, theme: np.ndarray, themes: int) -> list[str]:
    """Each theme's top terms (up to LABEL_TERMS): their mean TF-IDF weight over its handoffs (distinct texts weighted
    by their count), less half their mean over every handoff, so that a word all themes use ranks lower; a term left
    out when it weighs less than DISTINCT times its mean over every handoff (there is more than one theme), or shares
    a word with one already shown ("refund", then not "refund late")."""
    overall = np.asarray(rows.T @ counts).ravel() / counts.sum()
    labels = []
    for t in range(themes):
        members = theme == t
        inside = np.asarray(rows[members].T @ counts[members]).ravel() / counts[members].sum()
        score = inside - overall * 0.5
        chosen: list[str] = []
        for i in np.lexsort((terms, -score)):
            if inside[i] <= 0 or score[i] <= 0 or len(chosen) == LABEL_TERMS:
                break
            term = str(terms[i])
            if themes > 1 and inside[i] < DISTINCT * overall[i]:  # as common elsewhere: it says nothing of this theme
                continue
            if any(_stems(term) & _stems(shown) for shown in chosen):  # a word once per label
                continue
            chosen.append(term)
        labels.append(" · ".join(chosen) or NO_WORDS)
    return labels


def _stems(term: str) -> set[str]:
    """A term's words without a plural's s: "refund" and "refunds" are one word in a label."""
    return {word.removesuffix("s") for word in term.split()}
