//! Members and their avatars: uploaded through an upload URL (or posted to
//! an HTTP action), served from the file store.

use capstan::{
    ActionCtx, Doc, HttpError, HttpRequest, HttpResponse, HttpResult, Id, MutationCtx, QueryCtx,
    StoredFile,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, capstan::Table)]
#[table(name = "members", index(by_email = [email]))]
pub struct Member {
    pub name: String,
    pub email: String,
    pub avatar: Option<Id<StoredFile>>,
}

#[capstan::mutation]
pub fn join(ctx: &mut MutationCtx, name: String, email: String) -> capstan::Result<Id<Member>> {
    ctx.db().insert(&Member {
        name,
        email,
        avatar: None,
    })
}

#[capstan::query]
pub fn get(ctx: &QueryCtx, email: String) -> capstan::Result<Option<Doc<Member>>> {
    ctx.db()
        .query::<Member>()
        .with_index(Member::by_email, |q| q.eq(&email))
        .first()
}

/// Step one of an upload: the browser POSTs the picture to this URL and
/// gets `{"storageId": …}` back.
#[capstan::mutation]
pub fn generate_upload_url(ctx: &mut MutationCtx) -> capstan::Result<String> {
    ctx.storage().generate_upload_url()
}

/// Step two: the member's avatar is that file; the old one is deleted.
#[capstan::mutation]
pub fn set_avatar(
    ctx: &mut MutationCtx,
    email: String,
    storage_id: Id<StoredFile>,
) -> capstan::Result<()> {
    let member =
        get(ctx.as_query(), email.clone())?.ok_or_else(|| capstan::error!("no member {email}"))?;
    if ctx.db().get(&storage_id)?.is_none() {
        return Err(capstan::error!("no such upload"));
    }
    if let Some(old) = &member.avatar {
        ctx.storage().delete(old)?;
    }
    ctx.db()
        .patch(&member.id, MemberPatch::new().avatar(storage_id))?;
    Ok(())
}

#[capstan::query]
pub fn avatar_url(ctx: &QueryCtx, email: String) -> capstan::Result<Option<String>> {
    match get(ctx, email)?.and_then(|member| member.avatar.clone()) {
        Some(avatar) => ctx.storage().get_url(&avatar),
        None => Ok(None),
    }
}

/// `GET /avatars/<email>`: redirects to the member's picture.
#[capstan::http_action]
pub fn avatar(ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
    let email = request
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let url = ctx
        .run_query::<avatar_url>(&AvatarUrlArgs { email })?
        .ok_or_else(|| HttpError::not_found("no avatar"))?;
    Ok(HttpResponse::new(302).with_header("location", url))
}

/// `POST /members/avatar` with the picture as the body and the member's
/// email in `X-Member-Email`: the same as the two steps, from one request.
#[capstan::http_action]
pub fn upload_avatar(ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
    let email = request
        .header("x-member-email")
        .ok_or_else(|| HttpError::bad_request("X-Member-Email is missing"))?
        .to_owned();
    let content_type = request.header("content-type").map(str::to_owned);
    let storage_id = ctx
        .storage()
        .store(request.body(), content_type.as_deref())?;
    ctx.run_mutation::<set_avatar>(&SetAvatarArgs {
        email,
        storage_id: storage_id.clone(),
    })?;
    Ok(HttpResponse::from_json(
        &capstan::json!({ "storageId": storage_id }),
    )?)
}
