"""Handoff texts grouped into themes by word statistics (issue 27 point 2): scikit-learn's TF-IDF and a latent
semantic space, then one average-linkage tree (SciPy, which scikit-learn is built on) cut at the number of themes
whose silhouette is highest. No model is downloaded and nothing is learnt beyond the texts given; nothing is random
but the latent space's seeded start: the same texts give the same themes.

What a theme is and is not is said in docs/reports.md ("handoff-themes"): words that occur together, not an
understanding of the handoff. This module knows texts only; `reports/themes.py` says which texts and counts the
handoffs behind each theme.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# A term shows in labels and counts in the statistics when at least this many handoffs use it: no one customer's
# words (a name, an address) name a theme. Words are letters only (three or more), so no order number or phone
# number is a term either.
MIN_HANDOFFS_PER_TERM = 3
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{3,}\b"
# Words every handoff's text is made of ("Customer wants ...", "... needs a team member"): English stop words and
# these say nothing of why.
HANDOFF_WORDS = ("customer", "customers", "team", "member", "members", "wants", "want", "needs", "need", "asked",
                 "asks", "please", "thanks", "thank", "hi", "hello")
MAX_THEMES = 20
MIN_THEME_SHARE = 0.01  # a number of themes whose smallest theme holds less of the handoffs is not chosen
MAX_TREE_TEXTS = 3000  # distinct texts the tree is grown on (its memory grows with their square); the others join the
# theme whose centre is nearest
SEED = 27  # the latent space's start, and which distinct texts the tree is grown on when there are more
COMPONENTS = 60  # dimensions of the latent space
LABEL_TERMS = 3


@dataclass
class Themes:
    """Documents grouped: each document's theme (0 = the largest theme, and so on), how typical of its theme it is
    (cosine similarity to the theme's centre), and each theme's label, its top terms."""

    theme: np.ndarray
    typical: np.ndarray
    labels: list[str]
    model: _Model | None  # what assigns other documents to these themes; None when there was nothing to learn

    def assign(self, texts: list[str]) -> np.ndarray:
        """The theme each of `texts` (another period's) is nearest to."""
        if self.model is None or not texts:
            return np.zeros(len(texts), dtype=np.int64)
        return self.model.nearest(self.model.space(texts))


@dataclass
class _Model:
    vectorizer: Any
    svd: Any
    centres: np.ndarray  # one row per theme, in theme order, unit length (zero: the theme of texts with no term)
    wordless: int | None = None  # that theme's number, when there is one

    def space(self, texts: list[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        vectors = self.vectorizer.transform(texts)
        return normalize(self.svd.transform(vectors) if self.svd is not None else vectors.toarray())

    def nearest(self, points: np.ndarray) -> np.ndarray:
        """The theme whose centre is nearest each point; a point of no term goes to the theme of those, if any."""
        nearest = np.argmax(points @ self.centres.T, axis=1)
        if self.wordless is not None:
            nearest[~points.any(axis=1)] = self.wordless
        return nearest


def group(texts: list[str], *, max_themes: int = MAX_THEMES) -> Themes:
    """Group `texts` (one per handoff) into themes; the same list, in any order, gives the same grouping."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize
    from threadpoolctl import threadpool_limits

    n = len(texts)
    nothing = Themes(theme=np.zeros(n, dtype=np.int64), typical=np.ones(n), labels=["(no shared words)"] if n else [],
                     model=None)
    vectorizer = TfidfVectorizer(lowercase=True, strip_accents="unicode", token_pattern=TOKEN_PATTERN,
                                 stop_words=_stop_words(), ngram_range=(1, 2), min_df=MIN_HANDOFFS_PER_TERM,
                                 sublinear_tf=True, dtype=np.float64)
    unique, first, inverse, counts = _unique_rows(texts)
    try:
        vectorizer.fit(texts)  # counts and rarity over every handoff: the order of the texts does not matter
    except ValueError:  # no term used by enough handoffs (few handoffs, or nothing in common)
        return nothing
    # Identical texts (a canned reason, "agent") are one point: fewer points, and no dependence on their order.
    rows = vectorizer.transform(unique)
    components = min(COMPONENTS, rows.shape[1] - 1, rows.shape[0] - 1)
    svd = TruncatedSVD(n_components=components, random_state=SEED) if components >= 2 else None
    with threadpool_limits(limits=1):  # one thread: sums in one order, so the same bits on any machine's cores
        space = normalize(svd.fit_transform(rows) if svd is not None else rows.toarray())
    # A text with no term used by enough handoffs (a takeover with no reason, "ok") has no place in the space: such
    # texts are a theme of their own, "(no shared words)", after the tree is grown on the others.
    worded = np.flatnonzero(rows.getnnz(axis=1) > 0)
    grown = worded[_tree_texts(counts[worded])]
    cut = _best_cut(space[grown], counts[grown], max_themes)
    if cut is None:
        return nothing
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
    order = np.lexsort((np.arange(sizes.shape[0]), -sizes))  # theme 0 is the largest; ties by the tree's number
    theme_of = np.empty_like(order)
    theme_of[order] = np.arange(order.shape[0])
    model.centres = centres[order]
    model.wordless = int(theme_of[themes]) if wordless.any() else None
    theme = theme_of[cluster]
    typical = np.einsum("ij,ij->i", space, model.centres[theme])
    labels = _labels(vectorizer, rows, counts, theme, model.centres.shape[0])
    return Themes(theme=theme[inverse], typical=typical[inverse], labels=labels, model=model)


def _tree_texts(counts: np.ndarray) -> np.ndarray:
    """The distinct texts the tree is grown on: all, or MAX_TREE_TEXTS drawn (seeded) as often as handoffs use them."""
    if counts.shape[0] <= MAX_TREE_TEXTS:
        return np.arange(counts.shape[0])
    rng = np.random.default_rng(SEED)
    return np.sort(rng.choice(counts.shape[0], MAX_TREE_TEXTS, replace=False, p=counts / counts.sum()))


def _best_cut(space: np.ndarray, weights: np.ndarray, max_themes: int) -> np.ndarray | None:
    """The average-linkage tree of the points (cosine distance), cut at every number of themes from 2 to `max_themes`;
    the cut with the highest silhouette wins (fewer themes on a tie), among those whose smallest theme holds at least
    MIN_THEME_SHARE of the handoffs. Themes numbered from 0; None when no cut has two themes."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist, squareform
    from sklearn.metrics import silhouette_score

    if space.shape[0] < 3:
        return None
    distances = np.clip(pdist(space, metric="cosine"), 0, None)
    tree = linkage(distances, method="average")
    square = squareform(distances)
    best: tuple[float, np.ndarray] | None = None
    for k in range(2, min(max_themes, space.shape[0] - 1) + 1):
        cut = fcluster(tree, k, criterion="maxclust") - 1
        found = cut.max() + 1
        if found < 2 or np.bincount(cut, weights=weights).min() < MIN_THEME_SHARE * weights.sum():
            continue
        score = float(silhouette_score(square, cut, metric="precomputed"))
        if best is None or score > best[0] + 1e-9:
            best = (score, cut)
    return None if best is None else best[1]


def _stop_words() -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(ENGLISH_STOP_WORDS | set(HANDOFF_WORDS))


def _unique_rows(texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    values, first, inverse, counts = np.unique(np.array(texts, dtype=object), return_index=True, return_inverse=True,
                                               return_counts=True)
    return list(values), first, inverse.reshape(-1), counts.astype(np.float64)


def _labels(vectorizer: Any, rows: Any, counts: np.ndarray, theme: np.ndarray, themes: int) -> list[str]:
    """Each theme's top terms: their mean TF-IDF weight over its handoffs (distinct texts weighted by their count),
    less half their mean over every handoff, so that a word all themes use ranks lower; a term left out when it shares
    a word with one already shown ("refund", then not "refund late")."""
    terms = vectorizer.get_feature_names_out()
    overall = np.asarray(rows.T @ counts).ravel() / counts.sum()
    labels = []
    for t in range(themes):
        members = theme == t
        inside = np.asarray(rows[members].T @ counts[members]).ravel() / counts[members].sum()
        mean = inside - overall * 0.5  # what sets the theme apart: a word every theme uses ranks lower
        chosen: list[str] = []
        for i in np.lexsort((terms, -mean)):
            if mean[i] <= 0 or len(chosen) == LABEL_TERMS:
                break
            term = str(terms[i])
            if any(_stems(term) & _stems(shown) for shown in chosen):  # a word once per label
                continue
            chosen.append(term)
        labels.append(" · ".join(chosen) or "(no shared words)")
    return labels


def _stems(term: str) -> set[str]:
    """A term's words without a plural's s: "refund" and "refunds" are one word in a label."""
    return {word.removesuffix("s") for word in term.split()}
