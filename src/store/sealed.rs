//! Rows as the persistent stores keep them, secrets still sealed, and how they are opened into
//! [`App`], [`AppCodeRecord`] and [`AppQuotaRecord`]: one implementation for the SQLite and
//! PostgreSQL stores.

use std::fmt;

use super::cipher::{code_binding, secret_binding, CipherError, Sealed, Sealer};
use super::{
    App, AppCodeRecord, AppQuotaRecord, Page, Scope, SecretString, StoreError, StoreResult,
    Timestamp,
};
use crate::code::AppCode;
use crate::quota::{self, AppQuota, TimeUnit};
use crate::secret::Secret;

/// An app row as stored, its secret sealed.
pub(super) struct RawApp {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) remark: String,
    pub(super) creator: String,
    pub(super) app_key: String,
    pub(super) secret: Secret<Vec<u8>>,
    pub(super) nonce: Option<Vec<u8>>,
    pub(super) register_time: i64,
    pub(super) update_time: i64,
    pub(super) status: i32,
}

impl RawApp {
    /// Opens the secret; `backend` names the store in error messages.
    pub(super) fn open(self, sealer: &Sealer, scope: &Scope, backend: &str) -> StoreResult<App> {
        let plain = sealer
            .open(
                &secret_binding(scope, &self.id),
                self.nonce.as_deref(),
                self.secret.expose(),
            )
            .map_err(|e| cipher(backend, format_args!("secret of app {}", self.id), e))?;
        let secret = std::str::from_utf8(plain.expose()).map_err(|_| {
            corrupt(
                backend,
                format_args!("secret of app {} is not UTF-8", self.id),
            )
        })?;
        Ok(App {
            app_secret: SecretString::new(secret),
            id: self.id,
            scope: scope.clone(),
            name: self.name,
            remark: self.remark,
            creator: self.creator,
            app_key: self.app_key,
            register_time: Timestamp::from_unix_nanos(self.register_time),
            update_time: Timestamp::from_unix_nanos(self.update_time),
            status: self.status,
        })
    }
}

/// Seals `app`'s secret as its row keeps it, bound to its scope and ID (creation and update
/// alike); `backend` names the store in error messages.
pub(super) fn seal_secret(sealer: &Sealer, app: &App, backend: &str) -> StoreResult<Sealed> {
    sealer
        .seal(
            &secret_binding(&app.scope, &app.id),
            app.app_secret.expose().as_bytes(),
        )
        .map_err(|e| cipher(backend, format_args!("secret of app {}", app.id), e))
}

/// An AppCode row as stored, its value sealed.
pub(super) struct RawCode {
    pub(super) id: String,
    pub(super) app_id: String,
    pub(super) value: Secret<Vec<u8>>,
    pub(super) nonce: Option<Vec<u8>>,
    pub(super) create_time: i64,
}

impl RawCode {
    /// Opens and validates the value; `backend` names the store in error messages.
    pub(super) fn open(
        self,
        sealer: &Sealer,
        instance_id: &str,
        backend: &str,
    ) -> StoreResult<AppCodeRecord> {
        let plain = sealer
            .open(
                &code_binding(instance_id, &self.app_id, &self.id),
                self.nonce.as_deref(),
                self.value.expose(),
            )
            .map_err(|e| cipher(backend, format_args!("AppCode {}", self.id), e))?;
        let value = std::str::from_utf8(plain.expose())
            .map_err(|_| corrupt(backend, format_args!("AppCode {} is not UTF-8", self.id)))
            .and_then(|text| {
                AppCode::parse(text)
                    .map_err(|e| corrupt(backend, format_args!("AppCode {}: {e}", self.id)))
            })?;
        Ok(AppCodeRecord {
            id: self.id,
            app_id: self.app_id,
            value,
            create_time: Timestamp::from_unix_nanos(self.create_time),
        })
    }
}

/// An app quota's limit as its row keeps it: the unit as APIG spells it, the reset time in
/// whole seconds since the Unix epoch.
pub(super) struct RawLimit {
    pub(super) call_limits: i64,
    pub(super) time_unit: String,
    pub(super) time_interval: i64,
    pub(super) reset_time: Option<i64>,
}

impl RawLimit {
    /// `quota` in columns; `backend` names the store in error messages.
    pub(super) fn of(quota: &AppQuota, backend: &str) -> StoreResult<Self> {
        // A limit beyond SQL's signed integers would come back as another one.
        let call_limits = i64::try_from(quota.call_limits()).map_err(|_| {
            StoreError::Backend(
                format!(
                    "{backend}: a call limit of {} is too large to store",
                    quota.call_limits()
                )
                .into(),
            )
        })?;
        Ok(Self {
            call_limits,
            time_unit: quota.time_unit().as_str().to_owned(),
            time_interval: i64::from(quota.time_interval()),
            reset_time: quota.anchor().map(quota::secs),
        })
    }

    /// The quota back from its columns; `what` names the row in error messages.
    pub(super) fn open(self, what: impl fmt::Display, backend: &str) -> StoreResult<AppQuota> {
        let bad = |detail: &dyn fmt::Display| corrupt(backend, format_args!("{what}: {detail}"));
        let unit: TimeUnit = self.time_unit.parse().map_err(|e| bad(&e))?;
        let calls = u64::try_from(self.call_limits).map_err(|e| bad(&e))?;
        let interval = u32::try_from(self.time_interval).map_err(|e| bad(&e))?;
        let quota = AppQuota::new(calls, unit, interval).map_err(|e| bad(&e))?;
        Ok(match self.reset_time {
            Some(at) => quota.reset_time(quota::at(at)),
            None => quota,
        })
    }
}

/// An app quota row as stored, with the number of apps bound to it.
pub(super) struct RawQuota {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) limit: RawLimit,
    pub(super) remark: String,
    pub(super) create_time: i64,
    pub(super) bound_app_num: i64,
}

impl RawQuota {
    /// The record; `backend` names the store in error messages.
    pub(super) fn open(self, backend: &str) -> StoreResult<AppQuotaRecord> {
        let quota = self
            .limit
            .open(format_args!("app quota {}", self.id), backend)?;
        Ok(AppQuotaRecord {
            quota,
            bound_app_num: sql_total(self.bound_app_num, backend)?,
            id: self.id,
            name: self.name,
            remark: self.remark,
            create_time: Timestamp::from_unix_nanos(self.create_time),
        })
    }
}

/// SQL `LIMIT` and `OFFSET` are signed; anything beyond means "all".
pub(super) fn sql_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An app ID taken in its scope: IDs are generated, so this is a fault, not a client error.
pub(super) fn duplicate_app_id(id: &str) -> StoreError {
    StoreError::Backend(format!("an app with ID {id} exists in the scope already").into())
}

/// A row count read back from SQL.
pub(super) fn sql_total(n: i64, backend: &str) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| corrupt(backend, format_args!("negative row count {n}")))
}

/// A page of rows read back from SQL: the total the store counted and each row opened.
pub(super) fn page<T>(
    total: i64,
    backend: &str,
    items: impl IntoIterator<Item = StoreResult<T>>,
) -> StoreResult<Page<T>> {
    Ok(Page {
        total: sql_total(total, backend)?,
        items: items.into_iter().collect::<StoreResult<_>>()?,
    })
}

/// A revision read back from SQL (`instance_revisions`): never negative, which the tables'
/// `CHECK`s hold to unless the data was edited by hand.
pub(super) fn sql_revision(n: i64, backend: &str) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| corrupt(backend, format_args!("negative revision {n}")))
}

/// A row that cannot be what the store wrote: `detail` names the row and the defect, never a
/// secret.
pub(super) fn corrupt(backend: &str, detail: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("{backend} store holds corrupt data: {detail}").into())
}

/// A secret that could not be sealed or opened.
pub(super) fn cipher(backend: &str, what: impl fmt::Display, e: CipherError) -> StoreError {
    match e {
        CipherError::Random => StoreError::Backend(format!("sealing {what}: {e}").into()),
        _ => corrupt(backend, format_args!("{what}: {e}")),
    }
}
