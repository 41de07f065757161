"""Handoff texts grouped into themes by word statistics (issue 27 point 2): scikit-learn's TF-IDF, a latent semantic
space and k-means with a fixed seed, with the number of themes chosen by the silhouette of each candidate. No model
is downloaded and nothing is learnt beyond the texts given: the same texts give the same themes.

What a theme is and is not is said in docs/reports.md ("handoff-themes"): words that occur together, not an
understanding of the handoff. This module knows texts only; `reports/themes.py` says which texts and counts the
handoffs behind each theme.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A term shows in labels and counts in the statistics when at least this many handoffs use it: no one customer's
# words (a name, an address) name a theme. Words are letters only (three or more), so no order number or phone
# number is a term either.
MIN_HANDOFFS_PER_TERM = 3
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{3,}\b"
MAX_THEMES = 15
MIN_THEME_SHARE = 0.02  # a candidate number of themes whose smallest theme holds less is not chosen
# Words every handoff's text is made of ("Customer wants ...", "... needs a team member"): English stop words and
# these say nothing of why.
HANDOFF_WORDS = ("customer", "customers", "team", "member", "members", "wants", "want", "needs", "need", "asked",
                 "asks", "please", "thanks", "thank", "hi", "hello")
SEED = 27  # every random choice (the latent space, k-means' starts, the silhouette's sample) is seeded
SILHOUETTE_SAMPLE = 4000  # documents the silhouette of a candidate is measured on
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
        return self.model.nearest(texts)


@dataclass
class _Model:
    vectorizer: object
    svd: object | None
    centres: np.ndarray  # one row per theme, in theme order, unit length
    order: np.ndarray  # k-means' cluster number → theme number

    def space(self, texts: list[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        vectors = self.vectorizer.transform(texts)  # type: ignore[attr-defined]
        reduced = self.svd.transform(vectors) if self.svd is not None else vectors.toarray()  # type: ignore[attr-defined]
        return normalize(reduced)

    def nearest(self, texts: list[str]) -> np.ndarray:
        return np.argmax(self.space(texts) @ self.centres.T, axis=1)


def group(texts: list[str], *, max_themes: int = MAX_THEMES) -> Themes:
    """Group `texts` (one per handoff, in a canonical order: the same list gives the same result) into themes."""
    from sklearn.cluster import KMeans
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
    try:
        vectors = vectorizer.fit_transform(texts)
    except ValueError:  # no term used by enough handoffs (few handoffs, or nothing in common)
        return nothing
    # Identical texts (a canned reason, "agent") are one point with their count as weight: fewer points to group,
    # and the grouping cannot depend on how identical texts are ordered.
    unique, first, inverse, counts = _unique_rows(texts)
    rows = vectors[first]
    components = min(COMPONENTS, rows.shape[1] - 1, rows.shape[0] - 1)
    svd = TruncatedSVD(n_components=components, random_state=SEED) if components >= 2 else None
    with threadpool_limits(limits=1):  # one thread: sums in one order, so the same bits on any machine's cores
        space = normalize(svd.fit_transform(rows) if svd is not None else rows.toarray())
        best = _best_grouping(space, counts, max_themes, KMeans)
    if best is None:
        return nothing
    clusters, centres = best
    sizes = np.bincount(clusters, weights=counts, minlength=centres.shape[0])
    order_of = np.lexsort((np.arange(sizes.shape[0]), -sizes))  # theme 0 is the largest; ties by cluster number
    theme_of_cluster = np.empty_like(order_of)
    theme_of_cluster[order_of] = np.arange(order_of.shape[0])
    centres = normalize(centres[order_of])
    theme = theme_of_cluster[clusters]
    typical = np.einsum("ij,ij->i", space, centres[theme])
    labels = _labels(vectorizer, vectors, theme[inverse], centres.shape[0])
    model = _Model(vectorizer, svd, centres, theme_of_cluster)
    return Themes(theme=theme[inverse], typical=typical[inverse], labels=labels, model=model)


def _stop_words() -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(ENGLISH_STOP_WORDS | set(HANDOFF_WORDS))


def _unique_rows(texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    values, first, inverse, counts = np.unique(np.array(texts, dtype=object), return_index=True, return_inverse=True,
                                               return_counts=True)
    return list(values), first, inverse.reshape(-1), counts.astype(np.float64)


def _best_grouping(space: np.ndarray, weights: np.ndarray, max_themes: int,
                   kmeans: type) -> tuple[np.ndarray, np.ndarray] | None:
    """k-means for every candidate number of themes, 2 to `max_themes` (fewer when there are fewer distinct texts);
    the one with the highest silhouette wins, fewer themes on a tie, among those whose smallest theme holds at least
    MIN_THEME_SHARE of the handoffs. None when no candidate has two themes."""
    from sklearn.metrics import silhouette_score

    points = space.shape[0]
    total = weights.sum()
    rng = np.random.default_rng(SEED)
    sample = np.sort(rng.choice(points, SILHOUETTE_SAMPLE, replace=False)) if points > SILHOUETTE_SAMPLE else None
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for k in range(2, min(max_themes, points - 1) + 1):
        fitted = kmeans(n_clusters=k, n_init=4, random_state=SEED).fit(space, sample_weight=weights)
        clusters = fitted.labels_
        if len(set(clusters.tolist())) < k or np.bincount(clusters, weights=weights).min() < MIN_THEME_SHARE * total:
            continue
        picked = sample if sample is not None else slice(None)
        score = float(silhouette_score(space[picked], clusters[picked], metric="cosine"))
        if best is None or score > best[0] + 1e-9:
            best = (score, clusters, fitted.cluster_centers_)
    return None if best is None else (best[1], best[2])


def _labels(vectorizer: object, vectors: object, theme: np.ndarray, themes: int) -> list[str]:
    """Each theme's top terms by mean TF-IDF weight over its handoffs, a term left out when it shares a word with
    one already shown ("refund", then not "refund late")."""
    terms = vectorizer.get_feature_names_out()  # type: ignore[attr-defined]
    labels = []
    for t in range(themes):
        mean = np.asarray(vectors[theme == t].mean(axis=0)).ravel()  # type: ignore[index]
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
