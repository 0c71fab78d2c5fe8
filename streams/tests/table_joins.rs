//! Table-table joins through the test driver: inner, left and outer, with
//! updates and deletions on either side, and a joined table regrouped,
//! which needs each update's old joined row to take it back out.

use spool_streams::{
    BigEndian, Consumed, Grouped, KTable, Materialized, Nullable, Produced, StreamsBuilder,
    TestTopic, TopologyTestDriver, Unit, Utf8,
};

#[derive(Clone, Copy)]
enum Kind {
    Inner,
    Left,
    Outer,
}

fn shown(side: Option<&String>) -> &str {
    side.map_or("none", String::as_str)
}

/// Users (user → name) joined with plans (user → plan), each update of
/// the joined table written as `name/plan`, a deletion as `<deleted>`.
fn users_with_plans(kind: Kind) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let table = |topic: &str, store: &str| {
        builder.table(
            topic,
            Consumed::with(Utf8, Utf8),
            Materialized::with(Utf8, Utf8).named(store),
        )
    };
    let (users, plans) = (table("users", "users-store"), table("plans", "plans-store"));
    let joined: KTable<String, String> = match kind {
        Kind::Inner => users.join(&plans, |name, plan| format!("{name}/{plan}")),
        Kind::Left => users.left_join(&plans, |name, plan| format!("{name}/{}", shown(plan))),
        Kind::Outer => plans.outer_join(&users, |plan, name| {
            format!("{}/{}", shown(name), shown(plan))
        }),
    };
    joined
        .to_stream()
        .map_values(|row| row.unwrap_or_else(|| "<deleted>".into()))
        .to("joined", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.sub_topologies().len(),
        1,
        "both tables in one sub-topology"
    );
    TopologyTestDriver::new(&topology)
}

/// Runs the same updates through the join of `kind` and answers what it
/// wrote, in order.
fn updates_through(kind: Kind) -> Vec<(String, String)> {
    let mut driver = users_with_plans(kind);
    let topic = |name| TestTopic::<String, Option<String>>::new(name, Utf8, Nullable(Utf8));
    let (users, plans) = (topic("users"), topic("plans"));
    type Update<'a> = (
        &'a TestTopic<String, Option<String>>,
        &'a str,
        Option<&'a str>,
    );
    let updates: [Update; 6] = [
        (&users, "u1", Some("Ann")),
        (&plans, "u1", Some("gold")),
        (&plans, "u2", Some("free")),
        (&users, "u1", Some("Annie")),
        (&plans, "u1", None),
        (&users, "u1", None),
    ];
    for (time, (topic, key, value)) in updates.into_iter().enumerate() {
        let value = value.map(str::to_string);
        driver
            .pipe(topic, &key.to_string(), &value, time as i64)
            .unwrap();
    }
    assert_eq!(driver.skipped_records(), 0);
    driver
        .read(&TestTopic::new("joined", Utf8, Utf8))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

fn expected(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn an_inner_table_join_has_a_row_while_both_sides_have_one() {
    assert_eq!(
        updates_through(Kind::Inner),
        expected(&[
            ("u1", "Ann/gold"),
            ("u1", "Annie/gold"),
            ("u1", "<deleted>"), // the plan went
        ])
    );
}

#[test]
fn a_left_table_join_has_a_row_while_the_left_side_has_one() {
    assert_eq!(
        updates_through(Kind::Left),
        expected(&[
            ("u1", "Ann/none"),
            ("u1", "Ann/gold"),
            ("u1", "Annie/gold"),
            ("u1", "Annie/none"),
            ("u1", "<deleted>"), // the user went
        ])
    );
}

#[test]
fn an_outer_table_join_has_a_row_while_either_side_has_one() {
    assert_eq!(
        updates_through(Kind::Outer),
        expected(&[
            ("u1", "Ann/none"),
            ("u1", "Ann/gold"),
            ("u2", "none/free"),
            ("u1", "Annie/gold"),
            ("u1", "Annie/none"),
            ("u1", "<deleted>"),
        ])
    );
}

/// Users per plan, counted over the joined table: moving a user to
/// another plan takes it out of the old plan's count, which only works
/// if the join forwards the old joined row with the new one.
#[test]
fn a_joined_table_regrouped_takes_changed_rows_back_out() {
    let builder = StreamsBuilder::new();
    let table = |topic: &str, store: &str| {
        builder.table(
            topic,
            Consumed::with(Utf8, Utf8),
            Materialized::with(Utf8, Utf8).named(store),
        )
    };
    let (users, plans) = (table("users", "users-store"), table("plans", "plans-store"));
    users
        .join(&plans, |_name, plan| plan.clone())
        .group_by(
            |_, plan: &String| (plan.clone(), ()),
            Grouped::with(Utf8, Unit).named("by-plan"),
        )
        .count(Materialized::with(Utf8, BigEndian).named("per-plan"))
        .to("plan-counts", Produced::with(Utf8, BigEndian));
    let topology = builder.build().unwrap();
    let mut driver = TopologyTestDriver::new(&topology);
    let (users, plans) = (
        TestTopic::new("users", Utf8, Utf8),
        TestTopic::new("plans", Utf8, Utf8),
    );
    let pipe = |driver: &mut TopologyTestDriver, topic, key: &str, value: &str| {
        driver
            .pipe(topic, &key.to_string(), &value.to_string(), 0)
            .unwrap();
    };
    pipe(&mut driver, &users, "ann", "Ann");
    pipe(&mut driver, &users, "bob", "Bob");
    pipe(&mut driver, &plans, "ann", "gold");
    pipe(&mut driver, &plans, "bob", "gold");
    pipe(&mut driver, &plans, "ann", "free"); // gold 2 -> 1, free 0 -> 1
    let counts: Vec<(String, Option<i64>)> = driver
        .read(&TestTopic::new("plan-counts", Utf8, Nullable(BigEndian)))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    let last_of = |plan: &str| {
        counts
            .iter()
            .rev()
            .find(|(k, _)| k == plan)
            .and_then(|(_, v)| *v)
    };
    assert_eq!(last_of("gold"), Some(1), "{counts:?}");
    assert_eq!(last_of("free"), Some(1), "{counts:?}");
}

/// A stream joined with a joined table reads both of its sides on each
/// lookup (the joined table has no store of its own).
#[test]
fn a_stream_joins_a_joined_table_through_both_its_sides() {
    let builder = StreamsBuilder::new();
    let table = |topic: &str, store: &str| {
        builder.table(
            topic,
            Consumed::with(Utf8, Utf8),
            Materialized::with(Utf8, Utf8).named(store),
        )
    };
    let (users, plans) = (table("users", "users-store"), table("plans", "plans-store"));
    let profiles = users.left_join(&plans, |name, plan| format!("{name}/{}", shown(plan)));
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .join(
            &profiles,
            |page: &String, profile: &String| format!("{profile} saw {page}"),
            spool_streams::Joined::with(Utf8, Utf8),
        )
        .to("enriched", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    let mut driver = TopologyTestDriver::new(&topology);
    let topic = |name| TestTopic::new(name, Utf8, Utf8);
    let (users, plans, clicks) = (topic("users"), topic("plans"), topic("clicks"));
    let pipe = |driver: &mut TopologyTestDriver, topic, key: &str, value: &str, time| {
        driver
            .pipe(topic, &key.to_string(), &value.to_string(), time)
            .unwrap();
    };
    pipe(&mut driver, &clicks, "u1", "/early", 1);
    pipe(&mut driver, &users, "u1", "Ann", 2);
    pipe(&mut driver, &clicks, "u1", "/home", 3);
    pipe(&mut driver, &plans, "u1", "gold", 4);
    pipe(&mut driver, &clicks, "u1", "/cart", 5);
    let enriched: Vec<String> = driver
        .read(&topic("enriched"))
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(enriched, ["Ann/none saw /home", "Ann/gold saw /cart"]);
}
