//! HTTP actions, outbound HTTP and files.

use capstan::{
    ActionCtx, Doc, HttpError, HttpRequest, HttpResponse, HttpResult, Id, MutationCtx, QueryCtx,
    StoredFile,
};

/// Answers with what it got: method, path, a header, the body's length.
#[capstan::http_action]
pub fn echo(_ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
    Ok(HttpResponse::from_json(&capstan::json!({
        "method": request.method(),
        "path": request.path(),
        "query": request.query_param("q"),
        "header": request.header("x-test"),
        "length": request.body().len(),
        "body": String::from_utf8_lossy(request.body()),
    }))?
    .with_header("x-answered-by", "echo"))
}

#[capstan::http_action]
pub fn prefixed(_ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
    Ok(HttpResponse::from_text(format!(
        "prefixed {}",
        request.path()
    )))
}

/// A shared secret as a bearer token, checked in constant time.
#[capstan::http_action]
pub fn secret(ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
    let presented = request.bearer_token().unwrap_or_default();
    if !ctx.auth().check_secret("WEBHOOK_TOKEN", presented)? {
        return Err(HttpError::unauthorized("wrong token"));
    }
    ctx.run_mutation::<crate::jobs::mark>(&crate::jobs::MarkArgs {
        key: "secret".into(),
    })?;
    Ok(HttpResponse::from_text("ok"))
}

#[capstan::http_action]
pub fn github(ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
    request.verify_github(&ctx.env("GITHUB_SECRET").unwrap_or_default())?;
    ctx.run_mutation::<crate::jobs::mark>(&crate::jobs::MarkArgs {
        key: "github".into(),
    })?;
    Ok(HttpResponse::from_text("ok"))
}

#[capstan::http_action]
pub fn svix(ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
    request.verify_svix(&ctx.env("SVIX_SECRET").unwrap_or_default())?;
    ctx.run_mutation::<crate::jobs::mark>(&crate::jobs::MarkArgs { key: "svix".into() })?;
    Ok(HttpResponse::from_text("ok"))
}

/// Who is calling, by the bearer token.
#[capstan::http_action]
pub fn whoami(ctx: &mut ActionCtx, _request: HttpRequest) -> HttpResult {
    let subject = ctx.auth().user_identity()?.map(|user| user.subject);
    Ok(HttpResponse::from_json(
        &capstan::json!({ "subject": subject }),
    )?)
}

/// The length of `body`: `/api/action`'s twin of the `echo` HTTP action.
#[capstan::action]
pub fn echo_body(_ctx: &mut ActionCtx, body: String) -> capstan::Result<u32> {
    Ok(body.len() as u32)
}

/// Fetches `url`; the status and body, or the error.
#[capstan::action]
pub fn fetch(
    ctx: &mut ActionCtx,
    url: String,
    method: Option<String>,
    body: Option<String>,
) -> capstan::Result<capstan::Value> {
    let method = match method.as_deref() {
        Some("POST") => capstan::Method::Post,
        _ => capstan::Method::Get,
    };
    let request = HttpRequest::new(method, url)
        .with_header("x-from", "capstan")
        .with_body(body.unwrap_or_default().into_bytes());
    let response = ctx.fetch(request)?;
    capstan::to_value(&capstan::json!({
        "status": response.status(),
        "body": response.text().unwrap_or_default(),
        "length": response.body().len(),
    }))
}

#[capstan::action]
pub fn store_text(ctx: &mut ActionCtx, text: String) -> capstan::Result<Id<StoredFile>> {
    ctx.storage().store(text.as_bytes(), Some("text/plain"))
}

#[capstan::action]
pub fn read_text(ctx: &mut ActionCtx, id: Id<StoredFile>) -> capstan::Result<Option<String>> {
    Ok(ctx
        .storage()
        .get(&id)?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

#[capstan::query]
pub fn files(ctx: &QueryCtx) -> capstan::Result<Vec<Doc<StoredFile>>> {
    ctx.db().query::<StoredFile>().full_table_scan().collect()
}

#[capstan::query]
pub fn file_url(ctx: &QueryCtx, id: Id<StoredFile>) -> capstan::Result<Option<String>> {
    ctx.storage().get_url(&id)
}

#[capstan::mutation]
pub fn delete_file(ctx: &mut MutationCtx, id: Id<StoredFile>) -> capstan::Result<()> {
    ctx.storage().delete(&id)
}

#[capstan::mutation]
pub fn upload_url(ctx: &mut MutationCtx) -> capstan::Result<String> {
    ctx.storage().generate_upload_url()
}
