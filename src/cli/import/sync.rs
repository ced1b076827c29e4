//! One item of the source made to hold in the target: created when missing, skipped when it
//! matches, reported (or, with `--update`, changed) when it differs. Every write is one call of
//! the [`Store`] trait, the path the management API's own writes take.
//!
//! A difference is named by its fields, never by their values (secrets and AppCodes among them).

use apig_appcode::acl::AppAcl;
use apig_appcode::store::{
    App, AppChanges, AppCodeRecord, AppQuotaRecord, Scope, Store, StoreError, StoreResult,
    Timestamp,
};

/// What an import does besides creating what is missing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// Write nothing; report what would be done.
    pub(crate) dry_run: bool,
    /// Make what differs match the source.
    pub(crate) update: bool,
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Missing in the target, and created (or, in a dry run, to be created).
    Created,
    /// Already there, the same as at the source.
    Skipped,
    /// There, but these fields differ; left as it is.
    Differs(Vec<&'static str>),
    /// There, and these fields were made to match (or, in a dry run, would be).
    Updated(Vec<&'static str>),
    /// Could not be created or updated, for this reason.
    Failed(String),
}

/// The outcome of a store call that was the whole work.
fn written<T>(result: StoreResult<T>, done: Outcome) -> Result<Outcome, StoreError> {
    result.map_or_else(refused, |_| Ok(done))
}

/// A store error as the item's failure; `Err` when the store is unavailable, which no other
/// item would escape either: the import stops.
pub(crate) fn refused(e: StoreError) -> Result<Outcome, StoreError> {
    match e.is_unavailable() {
        true => Err(e),
        false => Ok(Outcome::Failed(e.to_string())),
    }
}

/// The outcome of a difference: reported, or written by `write` under `--update`.
async fn settle<T>(
    mode: Mode,
    fields: Vec<&'static str>,
    write: impl std::future::Future<Output = StoreResult<T>>,
) -> Result<Outcome, StoreError> {
    match (fields.is_empty(), mode.update, mode.dry_run) {
        (true, _, _) => Ok(Outcome::Skipped),
        (false, false, _) => Ok(Outcome::Differs(fields)),
        (false, true, true) => Ok(Outcome::Updated(fields)),
        (false, true, false) => written(write.await, Outcome::Updated(fields)),
    }
}

/// The app, by its ID. `Err` only when the store is unavailable: the import stops.
pub(crate) async fn app(store: &dyn Store, mode: Mode, app: App) -> Result<Outcome, StoreError> {
    let held = match store.get_app(&app.scope, &app.id).await {
        Ok(held) => held,
        Err(StoreError::AppNotFound) if mode.dry_run => return Ok(Outcome::Created),
        Err(StoreError::AppNotFound) => {
            return written(store.create_app(app).await, Outcome::Created);
        }
        Err(e) => return refused(e),
    };
    let mut changes = AppChanges::at(Timestamp::now());
    let mut differs = Differs::default();
    differs.field("name", &held.name, &app.name, &mut changes.name);
    differs.field("remark", &held.remark, &app.remark, &mut changes.remark);
    differs.field("app_key", &held.app_key, &app.app_key, &mut changes.app_key);
    differs.field(
        "app_secret",
        &held.app_secret,
        &app.app_secret,
        &mut changes.app_secret,
    );
    settle(
        mode,
        differs.0,
        store.update_app(&app.scope, &app.id, changes),
    )
    .await
}

/// The fields in which the source differs from what the target holds.
#[derive(Default)]
struct Differs(Vec<&'static str>);

impl Differs {
    /// Compares field `name`: when the source's value differs from the held one, the field is
    /// named and `change` set to the source's value.
    fn field<T: PartialEq + Clone>(
        &mut self,
        name: &'static str,
        held: &T,
        source: &T,
        change: &mut Option<T>,
    ) {
        if held != source {
            self.0.push(name);
            *change = Some(source.clone());
        }
    }
}

/// The AppCode, by its ID, among `held` (the target app's codes). A code whose value differs
/// is replaced (delete, then create with the source's ID) under `--update`.
pub(crate) async fn app_code(
    store: &dyn Store,
    scope: &Scope,
    mode: Mode,
    code: AppCodeRecord,
    held: &[AppCodeRecord],
) -> Result<Outcome, StoreError> {
    let Some(same_id) = held.iter().find(|h| h.id == code.id) else {
        if mode.dry_run {
            return Ok(Outcome::Created);
        }
        let created = store.create_app_code(scope, code).await;
        return written(created, Outcome::Created).map(explain_code_failure);
    };
    let fields = if same_id.value == code.value {
        vec![]
    } else {
        vec!["app_code"]
    };
    let replace = async {
        store.delete_app_code(scope, &code.app_id, &code.id).await?;
        store.create_app_code(scope, code).await
    };
    settle(mode, fields, replace)
        .await
        .map(explain_code_failure)
}

/// A store refusal said in terms of the import.
fn explain_code_failure(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Failed(reason) if reason == StoreError::AppCodeExists.to_string() => {
            Outcome::Failed("another AppCode of the target instance has the same value".into())
        }
        Outcome::Failed(reason) if reason == StoreError::AppCodeQuotaExceeded.to_string() => {
            Outcome::Failed(format!(
                "the target app holds its own AppCodes besides the source's: {reason}"
            ))
        }
        other => other,
    }
}

/// The app's ACL: `acl` is the source's (`None`: it has none); `held` the target's.
/// `None` when neither has one (nothing to count).
pub(crate) async fn app_acl(
    store: &dyn Store,
    scope: &Scope,
    mode: Mode,
    app_id: &str,
    acl: Option<AppAcl>,
    held: Option<AppAcl>,
) -> Result<Option<Outcome>, StoreError> {
    match (acl, held) {
        (None, None) => Ok(None),
        (Some(_), None) if mode.dry_run => Ok(Some(Outcome::Created)),
        (Some(acl), None) => written(
            store.set_app_acl(scope, app_id, acl).await,
            Outcome::Created,
        )
        .map(Some),
        (Some(acl), Some(held)) => {
            let fields = match (acl.kind() == held.kind(), acl.values() == held.values()) {
                (true, true) => vec![],
                (true, false) => vec!["app_acl_values"],
                (false, true) => vec!["app_acl_type"],
                (false, false) => vec!["app_acl_type", "app_acl_values"],
            };
            settle(mode, fields, store.set_app_acl(scope, app_id, acl))
                .await
                .map(Some)
        }
        // The source has none: removed under --update.
        (None, Some(_)) => settle(
            mode,
            vec!["app_acl (none at the source)"],
            store.delete_app_acl(scope, app_id),
        )
        .await
        .map(Some),
    }
}

/// The app quota, by its ID.
pub(crate) async fn app_quota(
    store: &dyn Store,
    scope: &Scope,
    mode: Mode,
    quota: AppQuotaRecord,
) -> Result<Outcome, StoreError> {
    let held = match store.get_app_quota(scope, &quota.id).await {
        Ok(held) => held,
        Err(StoreError::QuotaNotFound) if mode.dry_run => return Ok(Outcome::Created),
        Err(StoreError::QuotaNotFound) => {
            return written(store.create_app_quota(scope, quota).await, Outcome::Created);
        }
        Err(e) => return refused(e),
    };
    let mut fields = Vec::new();
    if held.name != quota.name {
        fields.push("name");
    }
    if held.quota != quota.quota {
        fields.push("limit");
    }
    if held.remark != quota.remark {
        fields.push("remark");
    }
    let id = quota.id.clone();
    settle(mode, fields, store.update_app_quota(scope, &id, quota)).await
}

/// The app's binding to the quota `quota_id`, made at `bound_time` at the source. An app bound
/// to another quota in the target is moved under `--update`.
pub(crate) async fn binding(
    store: &dyn Store,
    scope: &Scope,
    mode: Mode,
    quota_id: &str,
    app_id: &str,
    bound_time: Timestamp,
) -> Result<Outcome, StoreError> {
    let held = match store.app_bound_quota(scope, app_id).await {
        Ok(held) => held,
        // Its app is created by this run.
        Err(StoreError::AppNotFound) if mode.dry_run => return Ok(Outcome::Created),
        Err(StoreError::AppNotFound) => {
            return Ok(Outcome::Failed("the app is not in the target".into()))
        }
        Err(e) => return refused(e),
    };
    let app_ids = [app_id.to_owned()];
    let bind = store.bind_app_quota(scope, quota_id, &app_ids, bound_time);
    match held {
        None if mode.dry_run => Ok(Outcome::Created),
        None => written(bind.await, Outcome::Created),
        Some(q) if q.id == quota_id => Ok(Outcome::Skipped),
        Some(other) => {
            let rebind = async {
                store.unbind_app_quota(scope, &other.id, app_id).await?;
                bind.await
            };
            settle(mode, vec!["app_quota_id"], rebind).await
        }
    }
}
