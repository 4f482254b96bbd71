//! The DynamoDB store against DynamoDB Local: versioned conditional writes and pure transitions.

use ferry_shared::domain::Conflict;
use ferry_shared::keys::Key;
use ferry_shared::store::{Meta, StoreError};
use ferry_tests::store;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Slot {
    holder: Option<String>,
    count: u32,
}

fn claim(who: &'static str) -> impl Fn(Slot) -> Result<Slot, Conflict> {
    move |s: Slot| match &s.holder {
        Some(h) => Err(Conflict(format!("held by {h}"))),
        None => Ok(Slot {
            holder: Some(who.into()),
            count: s.count + 1,
        }),
    }
}

#[tokio::test]
async fn two_concurrent_conflicting_transitions_exactly_one_wins() {
    let store = store().await;
    for round in 0..10 {
        let key = Key::task(&format!("race-{}-{round}", uuid::Uuid::new_v4()));
        store
            .create(
                &key,
                &Meta::default(),
                &Slot {
                    holder: None,
                    count: 0,
                },
            )
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            store.transition(&key, |_: &Slot| Meta::default(), claim("a")),
            store.transition(&key, |_: &Slot| Meta::default(), claim("b")),
        );
        let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "round {round}: {a:?} / {b:?}");
        let loser = if a.is_ok() { b } else { a };
        assert!(matches!(loser, Err(StoreError::Conflict(_))), "{loser:?}");
        let final_state = store.get::<Slot>(&key).await.unwrap().unwrap();
        assert_eq!(final_state.value.count, 1);
        assert_eq!(final_state.version, 2);
    }
}

#[tokio::test]
async fn non_conflicting_concurrent_updates_are_all_applied() {
    let store = store().await;
    let key = Key::task(&format!("count-{}", uuid::Uuid::new_v4()));
    store
        .create(
            &key,
            &Meta::default(),
            &Slot {
                holder: None,
                count: 0,
            },
        )
        .await
        .unwrap();
    let bump = |s: Slot| {
        Ok::<_, Conflict>(Slot {
            count: s.count + 1,
            ..s
        })
    };
    let futs = (0..6).map(|_| store.transition(&key, |_: &Slot| Meta::default(), bump));
    for r in futures::future::join_all(futs).await {
        r.unwrap();
    }
    assert_eq!(
        store.get::<Slot>(&key).await.unwrap().unwrap().value.count,
        6
    );
}

#[tokio::test]
async fn create_refuses_an_existing_key_and_delete_reports_absence() {
    let store = store().await;
    let key = Key::task(&format!("once-{}", uuid::Uuid::new_v4()));
    let v = Slot {
        holder: None,
        count: 0,
    };
    store.create(&key, &Meta::default(), &v).await.unwrap();
    assert!(matches!(
        store.create(&key, &Meta::default(), &v).await,
        Err(StoreError::Exists)
    ));
    assert!(store.delete(&key).await.unwrap());
    assert!(!store.delete(&key).await.unwrap());
    assert!(matches!(
        store
            .transition(&key, |_: &Slot| Meta::default(), claim("a"))
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn listings_paginate_with_opaque_cursors_and_reject_forged_ones() {
    use ferry_shared::keys::{IndexKey, Listing};
    let store = store().await;
    let owner = format!("owner-{}", uuid::Uuid::new_v4().simple());
    for i in 0..7 {
        let id = format!("t{i}");
        let meta: Meta =
            IndexKey::task(&owner, &format!("2026-01-0{}T00:00:00Z", i + 1), &id).into();
        store
            .create(
                &Key::task(&format!("{owner}-{id}")),
                &meta,
                &Slot {
                    holder: Some(id),
                    count: i,
                },
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list::<Slot>(&Listing::tasks_of(&owner), 3, cursor.as_deref(), true)
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|s| s.count));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, vec![6, 5, 4, 3, 2, 1, 0]);
    let forged = store
        .list::<Slot>(
            &Listing::tasks_of(&owner),
            3,
            Some("bm90LWEtY3Vyc29y"),
            true,
        )
        .await;
    assert!(matches!(forged, Err(StoreError::BadCursor)));
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Tally {
    counts: std::collections::BTreeMap<String, i64>,
}

/// A fresh item with no counts yet, for tests of counter patches.
async fn new_tally(store: &ferry_shared::store::Store, id: &str) -> Key {
    let key = Key::task(id);
    store
        .create(
            &key,
            &Meta::default(),
            &Tally {
                counts: Default::default(),
            },
        )
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn get_many_reads_in_key_order_and_replace_many_is_all_or_nothing() {
    use ferry_shared::store::Patch;
    let store = store().await;
    let tag = uuid::Uuid::new_v4();
    let keys: Vec<Key> = (0..120)
        .map(|i| Key::task(&format!("many-{tag}-{i}")))
        .collect();
    // 120 keys: more than one BatchGetItem (100), with gaps.
    for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 7 != 3) {
        let slot = Slot {
            holder: None,
            count: i as u32,
        };
        store.create(key, &Meta::default(), &slot).await.unwrap();
    }
    let got = store.get_many::<Slot>(&keys).await.unwrap();
    assert_eq!(got.len(), keys.len());
    for (i, g) in got.iter().enumerate() {
        match g {
            None => assert_eq!(i % 7, 3, "item {i} missing"),
            Some(v) => {
                assert_ne!(i % 7, 3, "item {i} should be missing");
                assert_eq!((v.value.count, v.version), (i as u32, 1));
            }
        }
    }

    let tally = new_tally(&store, &format!("many-{tag}-tally")).await;
    let batch = |expected: u64| -> Vec<(Key, Meta, Slot, u64)> {
        (0..3)
            .map(|i| {
                let slot = Slot {
                    holder: Some("batch".into()),
                    count: 1000 + i,
                };
                (keys[i as usize].clone(), Meta::default(), slot, expected)
            })
            .collect()
    };
    let counters = Patch::new().add("counts.done", 3);
    assert!(
        store
            .replace_many_counted(&batch(1), &tally, Some(&counters))
            .await
            .unwrap()
    );
    // The same expected versions again: every item moved on, so nothing is written or counted.
    assert!(
        !store
            .replace_many_counted(&batch(1), &tally, Some(&counters))
            .await
            .unwrap()
    );
    for (i, key) in keys.iter().take(3).enumerate() {
        let now = store.get::<Slot>(key).await.unwrap().unwrap();
        assert_eq!((now.value.count, now.version), (1000 + i as u32, 2));
    }
    let t = store.get::<Tally>(&tally).await.unwrap().unwrap();
    assert_eq!(t.value.counts.get("done"), Some(&3));
    // One stale item in the group is enough to refuse the whole group.
    let mut mixed = batch(2);
    mixed[1].3 = 1;
    assert!(
        !store
            .replace_many_counted(&mixed, &tally, Some(&counters))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get::<Slot>(&keys[0]).await.unwrap().unwrap().version,
        2
    );
    assert_eq!(
        store
            .get::<Tally>(&tally)
            .await
            .unwrap()
            .unwrap()
            .value
            .counts
            .get("done"),
        Some(&3)
    );
}

/// `create_many` writes a whole transaction or none of it and reports an existing item; `patch_many`
/// applies its patches together or, when one condition fails, not at all (how a listing page adds its
/// count to the run exactly once).
#[tokio::test]
async fn create_many_and_patch_many_are_all_or_nothing() {
    use ferry_shared::store::Patch;
    let store = store().await;
    let tag = uuid::Uuid::new_v4();
    let slot = |n: u32| Slot {
        holder: None,
        count: n,
    };
    let keys: Vec<Key> = (0..130)
        .map(|i| Key::task(&format!("cm-{tag}-{i}")))
        .collect();
    // 130 items: two transactions (99 + 31).
    let items: Vec<(Key, Slot)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), slot(i as u32)))
        .collect();
    assert!(store.create_many(&items).await.unwrap());
    let got = store.get_many::<Slot>(&keys).await.unwrap();
    assert!(got.iter().enumerate().all(|(i, g)| {
        g.as_ref()
            .is_some_and(|v| v.value.count == i as u32 && v.version == 1)
    }));
    // One existing key refuses its whole transaction: the new key beside it is not written.
    let fresh = Key::task(&format!("cm-{tag}-fresh"));
    let again = vec![(fresh.clone(), slot(7)), (keys[5].clone(), slot(99))];
    assert!(!store.create_many(&again).await.unwrap());
    assert!(store.get::<Slot>(&fresh).await.unwrap().is_none());
    assert_eq!(
        store
            .get::<Slot>(&keys[5])
            .await
            .unwrap()
            .unwrap()
            .value
            .count,
        5
    );

    let tally = new_tally(&store, &format!("cm-{tag}-tally")).await;
    let page_done = || {
        vec![
            (tally.clone(), Patch::new().add("counts.total", 250)),
            (
                keys[0].clone(),
                Patch::new()
                    .set("holder", &"page")
                    .unwrap()
                    .require_eq("holder", &Option::<String>::None)
                    .unwrap(),
            ),
        ]
    };
    assert!(store.patch_many(&page_done()).await.unwrap());
    // The same patches again: the condition on the second item fails, so the count is not added twice.
    assert!(!store.patch_many(&page_done()).await.unwrap());
    let t = store.get::<Tally>(&tally).await.unwrap().unwrap();
    assert_eq!(t.value.counts.get("total"), Some(&250));
    let first = store.get::<Slot>(&keys[0]).await.unwrap().unwrap();
    assert_eq!(first.value.holder.as_deref(), Some("page"));
}

/// A patch that keeps the version (a lease renewal) changes what it sets, still honours its
/// conditions, and leaves writes conditioned on the version the writer read free to go through; a
/// plain patch moves the version and such a write is refused.
#[tokio::test]
async fn a_version_keeping_patch_does_not_trip_a_versioned_write() {
    use ferry_shared::store::Patch;
    let store = store().await;
    let id = format!("keep-{}", uuid::Uuid::new_v4());
    let key = Key::task(&id);
    let slot = Slot {
        holder: Some("a".into()),
        count: 1,
    };
    store.create(&key, &Meta::default(), &slot).await.unwrap();
    let read = store.get::<Slot>(&key).await.unwrap().unwrap();
    assert_eq!(read.version, 1);

    let renew = |who: &str, n: u32| {
        Patch::new()
            .set("count", &n)
            .and_then(|p| p.require_eq("holder", &who))
            .unwrap()
            .keep_version()
    };
    assert!(store.patch(&key, &renew("a", 7)).await.unwrap());
    assert!(
        !store.patch(&key, &renew("b", 8)).await.unwrap(),
        "its condition still holds"
    );
    let now = store.get::<Slot>(&key).await.unwrap().unwrap();
    assert_eq!((now.value.count, now.version), (7, 1));
    // The holder's whole-item write, conditioned on the version it read, goes through.
    let ended = Slot {
        holder: None,
        count: 9,
    };
    let batch = vec![(key.clone(), Meta::default(), ended.clone(), read.version)];
    let tally = new_tally(&store, &format!("{id}-tally")).await;
    assert!(
        store
            .replace_many_counted(&batch, &tally, None)
            .await
            .unwrap()
    );
    let now = store.get::<Slot>(&key).await.unwrap().unwrap();
    assert_eq!((&now.value, now.version), (&ended, 2));

    // A plain patch moves the version: the same kind of write with the version read before it fails.
    let plain = Patch::new().set("count", &10u32).unwrap();
    assert!(store.patch(&key, &plain).await.unwrap());
    let stale = vec![(key.clone(), Meta::default(), now.value.clone(), now.version)];
    assert!(
        !store
            .replace_many_counted(&stale, &tally, None)
            .await
            .unwrap()
    );
}
