"""The bundled universes and ibsim's contract world describe the same real listings."""

from __future__ import annotations

from cluster import universes
from ibsim.contracts import default_world


def test_every_bundled_universe_member_is_known_to_ibsim_with_its_listing() -> None:
    world = default_world()
    unknown = []
    for name in ("asx200", "nasdaq", "etfs"):
        for member in universes.load(name):
            found = world.match(
                symbol=member.symbol,
                exchange=member.exchange,
                primary_exchange=member.primary_exchange,
                currency=member.currency,
            )
            # and its conId leads back to the same listing (conIds are unique)
            if len(found) != 1 or world.match(con_id=found[0].con_id) != found:
                unknown.append(f"{name}:{member.symbol}")
    assert unknown == [], f"universe members ibsim does not know: {unknown}"
