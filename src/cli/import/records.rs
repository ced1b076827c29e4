//! The source's JSON read into the store's types: apps, AppCodes, ACLs, app quotas and their
//! bindings, as APIG shows them.
//!
//! An item that is not what APIG sends is an error naming its ID and field, never a value: the
//! values are app secrets and AppCodes. Times are kept when the source gives them in APIG's
//! form, and are the time of the import otherwise.

use std::time::{Duration, UNIX_EPOCH};

use apig_appcode::acl::{AclType, AppAcl};
use apig_appcode::quota::{AppQuota, TimeUnit};
use apig_appcode::store::{App, AppCodeRecord, AppQuotaRecord, Scope, SecretString, Timestamp};
use apig_appcode::AppCode;
use serde_json::Value;

/// `creator` of an app whose source names none.
const CREATOR: &str = "USER";
/// `status` of a valid app.
const STATUS_VALID: i32 = 1;

/// An app as the source shows it. `Debug` redacts the secret.
#[derive(Debug)]
pub(crate) struct SourceApp {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) remark: String,
    pub(crate) creator: String,
    pub(crate) app_key: String,
    /// `None` when the source's list left it out: then the app is read on its own.
    pub(crate) app_secret: Option<SecretString>,
    pub(crate) register_time: Option<Timestamp>,
    pub(crate) update_time: Option<Timestamp>,
    pub(crate) status: i32,
}

impl SourceApp {
    /// The app to create in `scope`, with the source's ID, key, secret and times; `None`
    /// without a secret.
    pub(crate) fn to_app(&self, scope: &Scope) -> Option<App> {
        let now = Timestamp::now();
        let register_time = self.register_time.unwrap_or(now);
        Some(App {
            id: self.id.clone(),
            scope: scope.clone(),
            name: self.name.clone(),
            remark: self.remark.clone(),
            creator: self.creator.clone(),
            app_key: self.app_key.clone(),
            app_secret: self.app_secret.clone()?,
            register_time,
            update_time: self.update_time.unwrap_or(register_time),
            status: self.status,
        })
    }
}

/// An app bound to a quota at the source, and since when.
#[derive(Debug)]
pub(crate) struct SourceBinding {
    pub(crate) app_id: String,
    pub(crate) bound_time: Option<Timestamp>,
}

/// An item of `GET /apps`, or the body of `GET /apps/{id}`.
pub(crate) fn app(v: &Value) -> Result<SourceApp, String> {
    let id = required(v, "id", "an app")?;
    let what = format!("app {id}");
    Ok(SourceApp {
        name: required(v, "name", &what)?,
        remark: optional(v, "remark").unwrap_or_default(),
        creator: optional(v, "creator").unwrap_or_else(|| CREATOR.to_owned()),
        app_key: required(v, "app_key", &what)?,
        app_secret: optional(v, "app_secret").map(SecretString::new),
        register_time: time(v, "register_time"),
        update_time: time(v, "update_time"),
        status: v
            .get("status")
            .and_then(Value::as_i64)
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(STATUS_VALID),
        id,
    })
}

/// An item of `GET /apps/{app_id}/app-codes`: the value must be a valid AppCode.
pub(crate) fn app_code(app_id: &str, v: &Value) -> Result<AppCodeRecord, String> {
    let id = required(v, "id", &format!("an AppCode of app {app_id}"))?;
    let what = format!("AppCode {id} of app {app_id}");
    let value = required(v, "app_code", &what)?;
    let value = AppCode::parse(&value).map_err(|_| format!("{what}: not a valid AppCode value"))?;
    Ok(AppCodeRecord {
        id,
        app_id: app_id.to_owned(),
        value,
        create_time: time(v, "create_time").unwrap_or_else(Timestamp::now),
    })
}

/// The body of `GET /apps/{app_id}/app-acl`: `None` when it lists no value.
pub(crate) fn acl(v: &Value) -> Result<Option<AppAcl>, String> {
    let app = optional(v, "app_id").unwrap_or_default();
    let values: Vec<&str> = v
        .get("app_acl_values")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("ACL of app {app}: no `app_acl_values` list"))?
        .iter()
        .map(|value| value.as_str().unwrap_or_default())
        .collect();
    if values.is_empty() {
        return Ok(None);
    }
    let kind: AclType = required(v, "app_acl_type", &format!("ACL of app {app}"))?
        .parse()
        .map_err(|_| format!("ACL of app {app}: `app_acl_type` is neither PERMIT nor DENY"))?;
    AppAcl::new(kind, values)
        .map(Some)
        .map_err(|e| format!("ACL of app {app}: {e}"))
}

/// An item of `GET /app-quotas`.
pub(crate) fn quota(v: &Value) -> Result<AppQuotaRecord, String> {
    let id = required(v, "app_quota_id", "an app quota")?;
    let what = format!("app quota {id}");
    let calls = v
        .get("call_limits")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{what}: no `call_limits` count"))?;
    let unit: TimeUnit = required(v, "time_unit", &what)?
        .parse()
        .map_err(|_| format!("{what}: unknown `time_unit`"))?;
    let interval = v
        .get("time_interval")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("{what}: no `time_interval` count"))?;
    let mut quota = AppQuota::new(calls, unit, interval).map_err(|e| format!("{what}: {e}"))?;
    if let Some(text) = optional(v, "reset_time").filter(|t| !t.is_empty()) {
        // APIG writes `YYYY-MM-DD HH:MM:SS` in UTC.
        let at: Timestamp = format!("{}Z", text.replacen(' ', "T", 1))
            .parse()
            .map_err(|_| format!("{what}: `reset_time` is not YYYY-MM-DD HH:MM:SS"))?;
        let secs = u64::try_from(at.unix_nanos() / 1_000_000_000)
            .map_err(|_| format!("{what}: `reset_time` is before 1970"))?;
        quota = quota.reset_time(UNIX_EPOCH + Duration::from_secs(secs));
    }
    Ok(AppQuotaRecord {
        name: required(v, "name", &what)?,
        quota,
        remark: optional(v, "remark").unwrap_or_default(),
        create_time: time(v, "create_time").unwrap_or_else(Timestamp::now),
        bound_app_num: 0,
        id,
    })
}

/// An item of `GET /app-quotas/{id}/bound-apps`.
pub(crate) fn binding(v: &Value) -> Result<SourceBinding, String> {
    Ok(SourceBinding {
        app_id: required(v, "app_id", "an app bound to a quota")?,
        bound_time: time(v, "bound_time"),
    })
}

fn required(v: &Value, field: &str, what: &str) -> Result<String, String> {
    optional(v, field).ok_or_else(|| format!("{what}: no `{field}` text"))
}

fn optional(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn time(v: &Value, field: &str) -> Option<Timestamp> {
    v.get(field)?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_app_keeps_its_id_key_secret_and_times() {
        let v = json!({"id": "a1", "name": "shop", "app_key": "k1", "app_secret": "s3cret-value",
                       "register_time": "2020-07-24T02:37:24.835128293Z", "status": 1});
        let app = app(&v).unwrap();
        assert!(!format!("{app:?}").contains("s3cret-value"));
        let made = app.to_app(&Scope::new("p", "i")).unwrap();
        assert_eq!((made.id.as_str(), made.app_key.as_str()), ("a1", "k1"));
        assert_eq!(made.app_secret.expose(), "s3cret-value");
        assert_eq!(made.register_time, made.update_time);
        assert_eq!(
            made.register_time,
            Timestamp::from_unix_nanos(1_595_558_244_835_128_293)
        );
        let err = super::app(&json!({"id": "a2", "name": "x"})).unwrap_err();
        assert!(err.contains("a2") && err.contains("app_key"), "{err}");
    }

    #[test]
    fn a_bad_app_code_is_named_by_its_id_only() {
        let v = json!({"id": "c1", "app_code": "short-secret-value"});
        let err = app_code("a1", &v).unwrap_err();
        assert!(
            err.contains("c1") && !err.contains("short-secret-value"),
            "{err}"
        );
    }

    #[test]
    fn acls_and_quotas_read_as_apig_writes_them() {
        assert_eq!(
            acl(&json!({"app_id": "a1", "app_acl_values": []})),
            Ok(None)
        );
        let deny = acl(&json!({"app_id": "a1", "app_acl_type": "DENY",
                               "app_acl_values": ["10.0.0.0/8"]}))
        .unwrap()
        .unwrap();
        assert_eq!(deny.kind(), AclType::Deny);
        let q = quota(
            &json!({"app_quota_id": "q1", "name": "daily", "call_limits": 10,
                              "time_unit": "DAY", "time_interval": 1,
                              "reset_time": "2020-02-29 05:05:00"}),
        )
        .unwrap();
        assert_eq!(
            q.quota.anchor(),
            Some(UNIX_EPOCH + Duration::from_secs(1_582_952_700))
        );
        assert!(
            quota(&json!({"app_quota_id": "q2", "name": "x", "call_limits": 1,
                              "time_unit": "WEEK", "time_interval": 1}))
            .is_err()
        );
    }
}
