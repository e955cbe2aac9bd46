# Copyright 2026 The libcdp Authors.
#
# db.identity: rules, automatic and manual merges, explanations.

import pytest

import cdp


def test_login_merges_the_anonymous_profile(db):
    anon = db.events.track({"type": "page_view", "anonymousId": "a-1"})
    known = db.profiles.create({"externalIds": {"customerId": "C1", "email": "k@example.com"}})
    login = db.events.track({"type": "page_view", "anonymousId": "a-1", "email": "K@Example.com"})
    assert login["profileId"] == known["id"]
    assert login["mergedProfiles"] == [anon["profileId"]]
    assert db.profiles.get(anon["profileId"])["id"] == known["id"]
    why = db.identity.explain(anon["profileId"])
    assert why["merges"][0]["mergeId"] == login["mergeId"]
    assert why["merges"][0]["evidence"]["identifier"] == {"type": "anonymousId", "value": "a-1"}
    assert db.identity.stats()["mergedProfiles"] == 1


def test_manual_merge_and_errors(db):
    a = db.profiles.create({"attributes": {"firstName": "Ada"}})
    b = db.profiles.create({"attributes": {"firstName": "Adeline", "city": "Paris"}})
    merged = db.identity.merge([a["id"], b["id"]], reason="support ticket 7")
    assert merged["profileId"] == a["id"] and merged["merged"] == [b["id"]]
    p = db.profiles.get(b["id"])
    assert p["attributes"] == {"firstName": "Ada", "city": "Paris"}
    assert p["conflicts"][0]["field"] == "attributes.firstName"
    with pytest.raises(cdp.InvalidArgument):
        db.identity.merge([a["id"], b["id"]])
    with pytest.raises(cdp.NotFound):
        db.identity.merge([a["id"], "nobody"])
    with pytest.raises(TypeError):
        db.identity.merge("ab")


def test_rules_round_trip_and_validation(db):
    rules = db.identity.rules()
    assert [t["type"] for t in rules["identifiers"]][:2] == ["customerId", "email"]
    rules["identifiers"].append({"type": "loyaltyId", "limit": 1})
    assert db.identity.set_rules(rules)["identifiers"][-1]["type"] == "loyaltyId"
    p = db.profiles.create({"externalIds": {"loyaltyId": "L-9"}})
    assert db.events.track({"type": "page_view", "identifiers": {"loyaltyId": "L-9"}})["profileId"] == p["id"]
    with pytest.raises(cdp.InvalidArgument) as err:
        db.identity.set_rules({"identifiers": [{"type": "email", "limit": 0}]})
    assert err.value.field == "identifiers[0].limit"


def test_identify_sets_traits_and_links(db):
    anon = db.events.track({"type": "page_view", "anonymousId": "py-anon"})
    r = db.identity.identify({"anonymousId": "py-anon", "userId": "U-7"}, attributes={"firstName": "Lin"})
    assert r["profileId"] == anon["profileId"] and r["profileCreated"] is False
    p = db.profiles.get(anon["profileId"])
    assert p["externalIds"]["customerId"] == "U-7" and p["attributes"]["firstName"] == "Lin"
    with pytest.raises(cdp.InvalidArgument) as err:
        db.identity.identify({"userId": "U-8"}, attributes={"firstName": 1})
    assert err.value.field == "attributes.firstName"


def test_identify_records_source_and_time_of_what_it_sets(db):
    import datetime
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    r = db.identity.identify({"userId": "U-9"}, attributes={"firstName": "Ana"}, source="crm", timestamp=when)
    src = db.profiles.get(r["profileId"])["attributeSources"]["attributes.firstName"]
    assert src["source"] == "crm" and src["at"] == "2026-01-02T03:04:05.000Z"
    r = db.identity.identify({"userId": "U-9"}, attributes={"lastName": "Ruiz"}, timestamp=1767323045000)
    src = db.profiles.get(r["profileId"])["attributeSources"]["attributes.lastName"]
    assert src["source"] == "identify" and src["at"] == "2026-01-02T03:04:05.000Z"
    with pytest.raises(cdp.InvalidArgument) as err:
        db.identity.identify({"userId": "U-9"}, attributes={"city": "X"}, timestamp="yesterday")
    assert err.value.field == "timestamp"


def test_unmerge_round_trip(db):
    a = db.profiles.create({"externalIds": {"email": "ua@x.com"}})
    b = db.events.track({"type": "page_view", "anonymousId": "ub"})
    login = db.events.track({"type": "page_view", "anonymousId": "ub", "email": "ua@x.com"})
    assert login["profileId"] == a["id"]
    undone = db.identity.unmerge(a["id"], login["mergeId"])
    assert undone["restored"] == [b["profileId"]]
    assert db.profiles.get(b["profileId"])["id"] == b["profileId"]
    with pytest.raises(cdp.FailedPrecondition):
        db.identity.unmerge(a["id"], login["mergeId"])


def test_unification_rate_and_merge_counts(db):
    for i in range(4):
        db.events.track({"type": "page_view", "anonymousId": f"anon-{i}"})
    assert db.identity.stats()["unificationRate"] == 0.0
    # The first two visitors turn out to be one customer: one merge, 4 records held by 3 profiles.
    r = db.events.track({"type": "page_view", "anonymousId": "anon-0", "email": "one@x.com"})
    r = db.events.track({"type": "page_view", "anonymousId": "anon-1", "email": "one@x.com"})
    assert r["mergedProfiles"], r
    stats = db.identity.stats()
    assert (stats["profiles"], stats["merges"], stats["mergedProfiles"], stats["unmerges"]) == (3, 1, 1, 0), stats
    assert stats["unificationRate"] == pytest.approx(1 / 4)
    db.identity.unmerge(r["profileId"], r["mergeId"])
    stats = db.identity.stats()
    assert (stats["profiles"], stats["mergedProfiles"], stats["unmerges"]) == (4, 0, 1), stats
    assert stats["unificationRate"] == 0.0


def test_fuzzy_proposals(db):
    people = [("john", "smith", "2000", "19800101"), ("jon", "smith", "2000", "19800101"),
              ("mary", "jones", "3000", "19700505"), ("marie", "jones", "3000", "19700505"),
              ("peter", "brown", "4000", "19600606"), ("anna", "white", "5000", "19500707"),
              ("ann", "white", "5000", "19500707"), ("paul", "green", "6000", "19900909")]
    ids = [db.profiles.create({"attributes": {"firstName": f, "lastName": l, "postalCode": pc,
                                              "customFields": {"birthDate": dob}}})["id"] for f, l, pc, dob in people]
    config = db.identity.matching_config()
    config["proposeAbove"] = 0.5
    db.identity.set_matching_config(config)
    run = db.identity.find_duplicates()
    assert run["profiles"] == 8
    pending = db.identity.proposals("pending")
    assert len(pending) == run["proposed"] >= 1
    pairs = {frozenset(p["profileIds"]) for p in pending}
    assert frozenset((ids[0], ids[1])) in pairs
    accepted = db.identity.accept(pending[0]["proposalId"])
    assert accepted["status"] == "accepted" and accepted["mergeId"].startswith("mrg_")
    with pytest.raises(cdp.FailedPrecondition):
        db.identity.reject(pending[0]["proposalId"])
    with pytest.raises(cdp.InvalidArgument):
        db.identity.proposals("maybe")
    with pytest.raises(cdp.InvalidArgument) as err:
        db.identity.set_matching_config({"linkage": config["linkage"], "proposeAbove": 2})
    assert err.value.field == "proposeAbove"


def test_matching_on_write_proposes_a_new_duplicate(db):
    people = [("john", "smith", "2000", "19800101"), ("jon", "smith", "2000", "19800101"),
              ("mary", "jones", "3000", "19700505"), ("marie", "jones", "3000", "19700505"),
              ("peter", "brown", "4000", "19600606"), ("anna", "white", "5000", "19500707"),
              ("ann", "white", "5000", "19500707"), ("paul", "green", "6000", "19900909")]

    def create(first, last, postcode, dob):
        return db.profiles.create({"attributes": {"firstName": first, "lastName": last, "postalCode": postcode,
                                                  "customFields": {"birthDate": dob}}})["id"]

    ids = [create(*person) for person in people]
    config = db.identity.matching_config()
    assert config["onWrite"] is False
    db.identity.set_matching_config({**config, "proposeAbove": 0.5, "onWrite": True})
    assert db.identity.stats()["matching"]["model"] is None
    db.identity.find_duplicates()
    assert db.identity.stats()["matching"]["model"]["candidatePairs"] >= 1
    before = {p["proposalId"] for p in db.identity.proposals("pending")}
    newcomer = create("petr", "brown", "4000", "19600606")
    db.identity.match_pending()
    new = [p for p in db.identity.proposals("pending") if p["proposalId"] not in before]
    assert [set(p["profileIds"]) for p in new] == [{newcomer, ids[4]}]
    with pytest.raises(cdp.InvalidArgument) as err:
        db.identity.set_matching_config({**config, "onWrite": 1})
    assert err.value.field == "onWrite"


def test_dry_run_rules_changes_nothing(db):
    db.profiles.create({"externalIds": {"email": "a.b@gmail.com"}})
    db.profiles.create({"externalIds": {"email": "ab@gmail.com"}})
    rules = db.identity.rules()
    next_rules = {**rules, "identifiers": [dict(t, canonicalGmail=True) if t["type"] == "email" else t
                                           for t in rules["identifiers"]]}
    dry = db.identity.dry_run_rules(next_rules)
    assert len(dry["wouldMerge"]) == 1 and dry["wouldMerge"][0]["identifier"]["value"] == "ab@gmail.com"
    assert db.identity.rules() == rules


def test_apply_rules_merges_what_the_dry_run_listed(db):
    a = db.profiles.create({"externalIds": {"email": "a.b@gmail.com"}})
    b = db.profiles.create({"externalIds": {"email": "ab@gmail.com"}})
    rules = db.identity.rules()
    next_rules = {**rules, "identifiers": [dict(t, canonicalGmail=True) if t["type"] == "email" else t
                                           for t in rules["identifiers"]]}
    applied = db.identity.apply_rules(next_rules)
    assert [m["profileId"] for m in applied["merged"]] == [a["id"]] and applied["merged"][0]["merged"] == [b["id"]]
    assert db.identity.rules() == applied["rules"]
    assert db.profiles.get(b["id"])["id"] == a["id"]
    assert db.profiles.get(a["id"])["externalIds"]["email"] == "ab@gmail.com"
    with pytest.raises(cdp.InvalidArgument):
        db.identity.apply_rules({"identifiers": []})


def test_identify_batch(db):
    r = db.identity.identify_batch([{"identifiers": {"userId": "Q1"}, "attributes": {"firstName": "Q"}},
                                    {"identifiers": {"userId": "Q2"}, "attributes": {"firstName": 5}}])
    assert r["accepted"] == 1 and r["rejected"] == 1
    assert r["results"][1]["error"]["field"] == "attributes.firstName"
