"""The compiled projections (:class:`dataflows.projections_native.NativeProjections`) against
the reference (:class:`dataflows.projections.Projections`) over ten days of rewards: the
differential test's streams last seconds, so the windows' eviction and the relationships'
decay over days are checked here."""

from __future__ import annotations

import pickle
import random

import orjson

from dataflows.projections import Projections
from dataflows.projections_native import NativeProjections


def test_native_projections_give_the_same_documents_as_the_reference() -> None:
    rng = random.Random(5)
    ref, nat = Projections(5, 3 * 3600.0), NativeProjections(5, 3 * 3600.0)
    t = 1_793_577_600.0
    for i in range(4_000):
        t += rng.expovariate(1 / 200.0)  # ten days in all, gaps of seconds to hours
        kw = {"user_id": f"u{rng.randrange(30)}", "decision_id": f"d{i}",
              "action": rng.choice("abc"), "bucket": f"slot={rng.randrange(3)}",
              "reward": rng.choice([-1.0, -0.25, 0.0, 0.5, 1.0, rng.uniform(-1, 1)]),
              "engaged": rng.random() < 0.6, "close_ts": t}
        ref.apply(**kw)
        nat.apply(**kw)
        if i % 97 == 0:
            as_of = t + rng.uniform(0, 7200)
            assert orjson.dumps(nat.docs(as_of)) == orjson.dumps(ref.docs(as_of))
            assert nat.history_json() == ref.history_json()
            assert nat.take_touched_users() == (users := ref.take_touched_users())
            assert [nat.relationship_doc(u) for u in users] \
                == [ref.relationship_doc(u) for u in users]
        if i % 500 == 0:
            nat = pickle.loads(pickle.dumps(nat))  # an epoch end and a restore
    assert t - 1_793_577_600.0 > 7 * 86400  # the 7-day window has evicted buckets
    assert min(int(s) for s in nat.windows["7d"]) > 1_793_577_600
    assert nat.windows == ref.windows and nat.relationships == ref.relationships
