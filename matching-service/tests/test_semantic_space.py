"""The semantic space's bookkeeping (no model: hand-made unit vectors and a made-up background)."""
import numpy as np
import pytest

from matching.semantic import DIMENSIONS, MAX_LINKS, NEED, OFFER, Calibration, Space


def unit(rng, n):
    vectors = rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def data():
    rng = np.random.default_rng(4)
    base = unit(rng, 30)
    # texts around 3 topics (about 130 offers each), so that the cap of MAX_LINKS matters
    offers = base[rng.integers(0, 3, 400)] + 0.15 * unit(rng, 400)
    needs = base[rng.integers(0, 3, 300)] + 0.15 * unit(rng, 300)
    background = {NEED: unit(rng, 200), OFFER: unit(rng, 200)}
    return ([f"o{i}" for i in range(400)], offers / np.linalg.norm(offers, axis=1, keepdims=True),
            [f"n{i}" for i in range(300)], needs / np.linalg.norm(needs, axis=1, keepdims=True), background)


def filled(data, calibration=Calibration()):
    offer_texts, offers, need_texts, needs, background = data
    space = Space(calibration, background)
    space.add_vectors(OFFER, offer_texts, offers)
    space.add_vectors(NEED, need_texts, needs)
    return space


def test_linking_in_blocks_gives_the_links_of_one_text_at_a_time(data):
    offer_texts, _, need_texts, _, _ = data
    one, many = filled(data), filled(data)
    for text in offer_texts[:150]:
        one.links(OFFER, text)
    for text in need_texts:
        one.links(NEED, text)
    for text in offer_texts[150:]:
        one.links(OFFER, text)
    many.link_all(OFFER, offer_texts[:150])
    many.link_all(NEED, need_texts)
    many.link_all(OFFER, offer_texts[150:])
    capped = 0
    for kind, texts in ((OFFER, offer_texts), (NEED, need_texts)):
        for text in texts:
            a, b = one.links(kind, text), many.links(kind, text)
            assert a[0] == b[0]
            # the same links with the same strengths; a matrix-vector product and a block of them may
            # differ in a float's last bits, so at the cap two texts as good as tied may swap places
            one_way, other_way = {i: s for i, _, s in a[1]}, {i: s for i, _, s in b[1]}
            common = one_way.keys() & other_way.keys()
            assert [one_way[i] for i in common] == pytest.approx([other_way[i] for i in common], abs=1e-4)
            swapped = one_way.keys() ^ other_way.keys()
            assert len(swapped) <= 2
            if swapped:
                cut = min(one_way.values())
                assert all(abs({**one_way, **other_way}[i] - cut) < 1e-4 for i in swapped)
            assert [s for _, _, s in b[1]] == sorted((s for _, _, s in b[1]), reverse=True)
            capped += len(a[1]) == MAX_LINKS
    assert capped  # the cap was reached for some texts, so the partial top-k was exercised


def test_links_are_the_strongest_above_the_threshold_and_agree_with_the_pair_similarity(data):
    offer_texts, _, need_texts, _, _ = data
    space = filled(data)
    space.link_all(OFFER, offer_texts)
    space.link_all(NEED, need_texts)
    for text in need_texts[:40]:
        _, links = space.links(NEED, text)
        every = np.array([space.similarity(text, offer) for offer in offer_texts])
        above = np.flatnonzero(every >= space.calibration.threshold)
        assert len(links) == min(MAX_LINKS, len(above))
        assert {i for i, _, _ in links} <= set(above.tolist())
        if links:  # nothing left out is stronger than the weakest link kept
            weakest = min(similarity for _, _, similarity in links)
            left_out = np.setdiff1d(above, [i for i, _, _ in links])
            assert all(every[i] <= weakest + 1e-4 for i in left_out)
        for i, strength, similarity in links:
            assert similarity == pytest.approx(every[i], abs=1e-4)
            assert strength == pytest.approx(space.strength(text, offer_texts[i]), abs=1e-5)


def test_a_vector_is_held_once_and_a_text_without_one_has_no_links(data):
    offer_texts, _, _, _, _ = data
    space = filled(data)
    space.link_all(OFFER, offer_texts)
    assert len(space) == len(offer_texts) and not any(k == OFFER for k, _ in space._pending)
    assert space.links(NEED, "never embedded") == (None, ())


@pytest.mark.parametrize("size", [40 * 50, 3000 * 800])  # one thread / numba's threads (kernel.PARALLEL_FROM)
def test_the_compiled_top_k_keeps_what_a_stable_argsort_keeps(size):
    from matching import kernel

    rng = np.random.default_rng(size)
    queries = 40 if size < kernel.PARALLEL_FROM else 3000
    similarity = rng.normal(1.5, 1.0, size).astype(np.float32).reshape(queries, -1)
    similarity[:, ::7] = np.round(similarity[:, ::7], 1)  # ties, at the cut too
    ids = np.full((queries, MAX_LINKS), -1, np.int32)
    values = np.full((queries, MAX_LINKS), -np.inf, np.float32)
    counts = np.zeros(queries, np.int32)
    # given in two column blocks, the second first: the order they come in does not matter
    half = similarity.shape[1] // 2
    for columns in (np.arange(half, similarity.shape[1]), np.arange(half)):
        kernel.top_links(np.ascontiguousarray(similarity[:, columns]), np.arange(queries, dtype=np.int32),
                         columns.astype(np.int32), np.float32(2.0), ids, values, counts)
    for q in range(queries):
        row = similarity[q]
        order = np.argsort(-row, kind="stable")
        expected = [int(i) for i in order if row[i] >= 2.0][:MAX_LINKS]
        assert ids[q, :counts[q]].tolist() == expected
        assert values[q, :counts[q]].tolist() == row[expected].tolist()


def clustered(rng, n, centres, spread=0.35):
    vectors = centres[rng.integers(0, len(centres), n)] + spread * unit(rng, n)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_clustered_linking_finds_nearly_every_exact_link_and_all_when_it_probes_every_cluster():
    rng = np.random.default_rng(9)
    centres = unit(rng, 40)
    needs, offers = clustered(rng, 1200, centres), clustered(rng, 500, centres)
    background = {NEED: unit(rng, 200), OFFER: unit(rng, 200)}
    need_texts, offer_texts = [f"n{i}" for i in range(len(needs))], [f"o{i}" for i in range(len(offers))]

    def linked(approximate_from, probes):
        space = Space(Calibration(threshold=1.0), background)
        space.APPROXIMATE_FROM, space.PROBES = approximate_from, probes
        space.THREADED_FROM = 1  # numba's threads share the clusters out (as in a rebuild)
        space.add_vectors(NEED, need_texts, needs)
        space.add_vectors(OFFER, offer_texts, offers)
        space.link_all(NEED, need_texts[:1000])
        space.link_all(OFFER, offer_texts[:400])   # against 1,000 needs: the clusters
        space.link_all(NEED, need_texts[1000:])    # 200 more needs (after the clusters were made)
        space.link_all(OFFER, offer_texts[400:])   # clusters and the 200 needs since, compared one by one
        return space, [space.links(OFFER, text)[1] for text in offer_texts]

    exact_space, exact = linked(10**9, 0)
    assert exact_space._partition[NEED] is None and sum(map(len, exact)) > 400 * MAX_LINKS // 2
    space, approximate = linked(300, 4)
    partition = space._partition[NEED]
    assert partition is not None and len(partition.centres) < 1000 and partition.covered == 1000
    found = sum(len({i for i, _, _ in a} & {i for i, _, _ in b}) for a, b in zip(approximate, exact, strict=True))
    assert found / sum(map(len, exact)) >= 0.9
    # every link it made is a true one, with the exact strength
    for text, links in zip(offer_texts, approximate, strict=True):
        for i, strength, similarity in links:
            assert similarity == pytest.approx(space.similarity(need_texts[i], text), abs=1e-4)
            assert strength == pytest.approx(space.strength(need_texts[i], text), abs=1e-5)
    # the needs registered after the clusters were made are compared with every offer
    assert any(i >= 1000 for links in approximate[400:] for i, _, _ in links)
    # probing every cluster is comparing every pair: the same links, in the same order but for
    # near-ties (the products' rounding differs with the blocks' shapes: ~1e-7 relative)
    _, every = linked(300, 10**6)
    assert [{i for i, _, _ in links} for links in every] == [{i for i, _, _ in links} for links in exact]
    for mine, theirs in zip(every, exact, strict=True):
        assert [s for _, _, s in mine] == pytest.approx([s for _, _, s in theirs], rel=1e-6)
    assert space.link_count == sum(map(len, approximate)) + sum(len(space.links(NEED, t)[1]) for t in need_texts)


def test_the_term_bridge_links_a_need_to_the_terms_whose_phrasings_are_near():
    """Hand-made phrasings of 40 terms (two each, near the term's own direction): a need near term 7's
    direction is linked to term 7 first, at full strength; at most ``top`` terms; a need near nothing
    (below ``min_cosine``) to none."""
    from matching.semantic import BridgeCalibration, TermBridge

    rng = np.random.default_rng(11)
    directions = unit(rng, 40)
    owners = [f"t{i:02d}" for i in range(40) for _ in range(2)][::-1]  # not grouped by term: the bridge sorts
    phrasings = np.stack([directions[int(owner[1:])] + 0.3 * unit(rng, 1)[0] for owner in owners])
    phrasings /= np.linalg.norm(phrasings, axis=1, keepdims=True)
    bridge = TermBridge(phrasings, owners, BridgeCalibration(threshold=1.5, full=2.5, min_cosine=0.4, top=3))
    near = directions[7] + 0.2 * unit(rng, 1)[0]
    both = (directions[3] + directions[9]) / np.sqrt(2)
    stranger = unit(rng, 1)[0]
    found_near, found_both, found_stranger = bridge.links(np.stack([near / np.linalg.norm(near), both, stranger]))
    assert found_near[0] == ("t07", 1.0)
    assert {term for term, _ in found_both} >= {"t03", "t09"} and len(found_both) <= 3
    assert found_stranger == ()
    assert bridge.links(np.zeros((0, DIMENSIONS), np.float32)) == []


def test_a_batch_linked_at_once_gives_the_lists_of_one_member_at_a_time():
    """``Engine.link_profiles`` (what the batch handler does first: the batch's texts linked in two
    blocks) changes no list: every newcomer's list after its upsert, and every list at the end, as
    when each member's texts are linked as it comes. (Where a text reaches MAX_LINKS, which pair is
    kept depends on the order texts come in, as between a rebuild and one member at a time; here
    no text reaches it.)"""
    from matching.engine import Engine
    from matching.synthetic import ProfileFactory

    factory = ProfileFactory(seed=5, written_share=0.5)
    first, newcomers = factory.profiles(120), factory.profiles(60)
    texts = {NEED: sorted({n["label"] for p in first + newcomers for n in p["needs"]}),
             OFFER: sorted({o["label"] for p in first + newcomers for o in p["offers"]})}
    rng = np.random.default_rng(8)
    base = unit(rng, 60)  # texts around 60 topics, so that they link across members
    background = {NEED: unit(rng, 100), OFFER: unit(rng, 100)}

    def engine() -> Engine:
        space = Space(Calibration(threshold=3.0), background)
        for kind, labels in texts.items():
            vectors = base[np.random.default_rng(len(kind)).integers(0, 60, len(labels))] + 0.3 * unit(
                np.random.default_rng(9 + len(kind)), len(labels))
            space.add_vectors(kind, labels, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        built = Engine(semantic=space)
        built.load(first)
        return built

    one, batched = engine(), engine()
    assert one.semantic.rows(NEED) == batched.semantic.rows(NEED) > 0
    for start in range(0, len(newcomers), 20):
        chunk = newcomers[start:start + 20]
        batched.link_profiles(chunk)
        for profile in chunk:
            assert one.upsert(profile).lists == batched.upsert(profile).lists
    assert batched.semantic.rows(NEED) == len(texts[NEED]) and batched.semantic.rows(OFFER) == len(texts[OFFER])
    links = [len(batched.semantic.link_arrays(kind, row)[0]) for kind in (NEED, OFFER)
             for row in range(batched.semantic.rows(kind))]
    assert sum(links) > 500 and max(links) < MAX_LINKS
    for profile in first + newcomers:
        assert one.suggestions(profile["id"]) == batched.suggestions(profile["id"])
