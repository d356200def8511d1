//! `POST /api/chat/voice/transcribe` and `POST /api/chat/voice/synthesize` (seed §2).
//!
//! Transcription uses an OpenAI-compatible `/audio/transcriptions` endpoint (hosted, or a local
//! whisper server). Synthesis uses an OpenAI-compatible `/audio/speech` endpoint, or the local
//! espeak-ng when installed (WAV). With no provider for a request: 503 naming the setting.

use std::process::Stdio;
use std::time::Duration;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{AppError, AppJson, AppResult};
use crate::infra::outbound::{error_chain, read_limited};
use crate::state::AppState;

/// The most any audio upload may be, whatever `NOVA_MAX_AUDIO_BYTES` says.
const HARD_AUDIO_LIMIT: usize = 64 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transcribe))
        .routes(routes!(synthesize))
        .layer(DefaultBodyLimit::max(HARD_AUDIO_LIMIT))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioFormat {
    Wav,
    Mp3,
    Ogg,
    Webm,
}

impl AudioFormat {
    /// Recognised by content, not by name.
    fn sniff(bytes: &[u8]) -> Option<AudioFormat> {
        if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
            Some(AudioFormat::Wav)
        } else if bytes.starts_with(b"OggS") {
            Some(AudioFormat::Ogg)
        } else if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
            Some(AudioFormat::Webm)
        } else if bytes.starts_with(b"ID3")
            || (bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0)
        {
            Some(AudioFormat::Mp3)
        } else {
            None
        }
    }

    fn extension(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Ogg => "ogg",
            AudioFormat::Webm => "webm",
        }
    }
}

/// The length of a PCM WAV file in seconds, from its header.
fn wav_duration(bytes: &[u8]) -> Option<f64> {
    let mut pos = 12;
    let mut byte_rate = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        if id == b"fmt " && pos + 20 <= bytes.len() {
            byte_rate = Some(u32::from_le_bytes(
                bytes[pos + 16..pos + 20].try_into().ok()?,
            ));
        }
        if id == b"data" {
            let data = size.min(bytes.len().saturating_sub(pos + 8));
            return byte_rate.filter(|r| *r > 0).map(|r| data as f64 / r as f64);
        }
        pos += 8 + size + (size & 1);
    }
    None
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Transcript {
    pub text: String,
    /// The spoken language (ISO 639-1) when known.
    pub language: Option<String>,
    /// Seconds of audio.
    pub duration: Option<f64>,
}

/// Turns recorded speech into text for the chat input.
#[utoipa::path(post, path = "/api/chat/voice/transcribe", tag = "chat", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data",
        description = "`file`: the audio (wav, mp3, ogg or webm, up to NOVA_MAX_AUDIO_BYTES); `language`: optional ISO 639-1 hint"),
    responses((status = 200, body = Transcript), (status = 413, body = crate::error::Problem),
        (status = 415, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 502, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
async fn transcribe(
    State(state): State<AppState>,
    _auth: AuthUser,
    mut form: Multipart,
) -> AppResult<Json<Transcript>> {
    let max = state.config.max_audio_bytes;
    let mut audio: Option<Vec<u8>> = None;
    let mut language: Option<String> = None;
    while let Some(mut field) = form.next_field().await? {
        match field.name() {
            Some("file") => {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await? {
                    if bytes.len() + chunk.len() > max {
                        return Err(AppError::PayloadTooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                audio = Some(bytes);
            }
            Some("language") => {
                let text = field.text().await?;
                let text = text.trim().to_lowercase();
                if !(2..=3).contains(&text.len()) || !text.chars().all(|c| c.is_ascii_lowercase()) {
                    return Err(AppError::invalid(
                        "language",
                        "must be an ISO 639-1 code like `en`",
                    ));
                }
                language = Some(text);
            }
            other => {
                return Err(AppError::invalid(
                    other.unwrap_or_default(),
                    "is not a field of a transcription (file, language)",
                ));
            }
        }
    }
    let audio = audio
        .filter(|a| !a.is_empty())
        .ok_or_else(|| AppError::invalid("file", "is required: the audio to transcribe"))?;
    let format = AudioFormat::sniff(&audio).ok_or_else(|| {
        AppError::UnsupportedMediaType("the audio must be wav, mp3, ogg or webm".into())
    })?;
    let c = &state.config;
    let Some(base_url) = &c.stt_base_url else {
        return Err(AppError::Unavailable(
            "no transcription provider: set NOVA_STT_BASE_URL to an OpenAI-compatible server"
                .into(),
        ));
    };
    let local_duration = (format == AudioFormat::Wav)
        .then(|| wav_duration(&audio))
        .flatten();
    let part = reqwest::multipart::Part::bytes(audio)
        .file_name(format!("audio.{}", format.extension()))
        .mime_str(match format {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Ogg => "audio/ogg",
            AudioFormat::Webm => "audio/webm",
        })
        .map_err(anyhow::Error::from)?;
    let mut upload = reqwest::multipart::Form::new()
        .part("file", part)
        .text("model", c.stt_model.clone())
        .text("response_format", "verbose_json");
    if let Some(lang) = &language {
        upload = upload.text("language", lang.clone());
    }
    let mut request = state
        .outbound
        .request(
            Method::POST,
            &format!("{}/audio/transcriptions", base_url.trim_end_matches('/')),
        )
        .map_err(|e| provider_error(format!("the transcription provider: {e}")))?
        .multipart(upload)
        .timeout(Duration::from_secs(120));
    if let Some(key) = &c.stt_api_key {
        request = request.bearer_auth(&key.0);
    }
    let response = request.send().await.map_err(|e| {
        provider_error(format!(
            "the transcription provider is unreachable: {}",
            error_chain(&e)
        ))
    })?;
    if !response.status().is_success() {
        return Err(provider_error(format!(
            "the transcription provider answered {}",
            response.status()
        )));
    }
    let body = read_limited(response, TRANSCRIPT_MAX_BYTES)
        .await
        .map_err(|e| provider_error(format!("the transcription provider: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        provider_error(format!(
            "the transcription provider sent malformed JSON: {e}"
        ))
    })?;
    let text = v["text"]
        .as_str()
        .ok_or_else(|| provider_error("the transcription provider's answer has no text".into()))?;
    Ok(Json(Transcript {
        text: text.trim().to_owned(),
        language: v["language"].as_str().map(str::to_owned).or(language),
        duration: v["duration"].as_f64().or(local_duration),
    }))
}

/// The largest transcription answer read (JSON with the text and its segments).
const TRANSCRIPT_MAX_BYTES: usize = 4 << 20;

fn provider_error(detail: String) -> AppError {
    AppError::Rejected {
        status: axum::http::StatusCode::BAD_GATEWAY,
        detail,
        results: serde_json::Value::Null,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SpeechFormat {
    #[default]
    Wav,
    Mp3,
    Ogg,
}

impl SpeechFormat {
    fn name(self) -> &'static str {
        match self {
            SpeechFormat::Wav => "wav",
            SpeechFormat::Mp3 => "mp3",
            SpeechFormat::Ogg => "opus",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            SpeechFormat::Wav => "audio/wav",
            SpeechFormat::Mp3 => "audio/mpeg",
            SpeechFormat::Ogg => "audio/ogg",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeechRequest {
    /// 1–5,000 characters.
    #[schema(min_length = 1, max_length = 5000)]
    pub text: String,
    /// A voice name of the provider (e.g. `alloy`) or of espeak-ng (e.g. `en-us`).
    pub voice: Option<String>,
    /// wav (default), mp3 or ogg.
    #[serde(default)]
    pub format: SpeechFormat,
}

/// Reads text aloud; answers the audio bytes.
#[utoipa::path(post, path = "/api/chat/voice/synthesize", tag = "chat", security(("bearer" = [])),
    request_body = SpeechRequest,
    responses((status = 200, description = "The audio", content_type = "audio/wav"),
        (status = 422, body = crate::error::Problem), (status = 502, body = crate::error::Problem),
        (status = 503, body = crate::error::Problem)))]
async fn synthesize(
    State(state): State<AppState>,
    _auth: AuthUser,
    AppJson(req): AppJson<SpeechRequest>,
) -> AppResult<Response> {
    let text = req.text.trim();
    if text.is_empty() || text.chars().count() > 5_000 {
        return Err(AppError::invalid("text", "must be 1 to 5000 characters"));
    }
    if let Some(v) = &req.voice
        && (v.is_empty()
            || v.len() > 40
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+')))
    {
        return Err(AppError::invalid(
            "voice",
            "must be a voice name like `alloy` or `en-us`",
        ));
    }
    let c = &state.config;
    let audio = if let Some(base_url) = &c.tts_base_url {
        let mut request = state
            .outbound
            .request(
                Method::POST,
                &format!("{}/audio/speech", base_url.trim_end_matches('/')),
            )
            .map_err(|e| provider_error(format!("the speech provider: {e}")))?
            .json(&serde_json::json!({
                "model": c.tts_model,
                "input": text,
                "voice": req.voice.as_deref().unwrap_or("alloy"),
                "response_format": req.format.name(),
            }))
            .timeout(Duration::from_secs(60));
        if let Some(key) = &c.tts_api_key {
            request = request.bearer_auth(&key.0);
        }
        let response = request.send().await.map_err(|e| {
            provider_error(format!(
                "the speech provider is unreachable: {}",
                error_chain(&e)
            ))
        })?;
        if !response.status().is_success() {
            return Err(provider_error(format!(
                "the speech provider answered {}",
                response.status()
            )));
        }
        read_limited(response, c.max_audio_bytes)
            .await
            .map_err(|e| provider_error(format!("the speech provider's audio: {e}")))?
    } else if req.format == SpeechFormat::Wav
        && let Some(espeak) = &c.espeak_path
    {
        espeak_wav(espeak, text, req.voice.as_deref().unwrap_or("en")).await?
    } else {
        return Err(AppError::Unavailable(format!(
            "no speech provider for {}: set NOVA_TTS_BASE_URL to an OpenAI-compatible server{}",
            req.format.name(),
            if c.espeak_path.is_none() {
                " or install espeak-ng (wav)"
            } else {
                ""
            }
        )));
    };
    Ok(([(header::CONTENT_TYPE, req.format.content_type())], audio).into_response())
}

/// Speaks `text` with the local espeak-ng, as WAV.
async fn espeak_wav(program: &str, text: &str, voice: &str) -> AppResult<Vec<u8>> {
    let mut child = tokio::process::Command::new(program)
        .args(["-v", voice, "--stdout", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            AppError::Unavailable(format!(
                "espeak-ng could not start ({e}): set NOVA_TTS_BASE_URL or install espeak-ng"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(anyhow::Error::from)?;
    }
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| provider_error("espeak-ng took longer than 30 s".into()))?
        .map_err(anyhow::Error::from)?;
    if !output.status.success() || output.stdout.len() < 44 {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(AppError::invalid(
            "voice",
            format!("espeak-ng could not speak with this voice: {}", why.trim()),
        ));
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sniffed_from_content() {
        assert_eq!(
            AudioFormat::sniff(b"RIFF\0\0\0\0WAVEfmt "),
            Some(AudioFormat::Wav)
        );
        assert_eq!(AudioFormat::sniff(b"OggS\0\x02"), Some(AudioFormat::Ogg));
        assert_eq!(
            AudioFormat::sniff(&[0x1A, 0x45, 0xDF, 0xA3, 1]),
            Some(AudioFormat::Webm)
        );
        assert_eq!(AudioFormat::sniff(b"ID3\x04"), Some(AudioFormat::Mp3));
        assert_eq!(
            AudioFormat::sniff(&[0xFF, 0xFB, 0x90]),
            Some(AudioFormat::Mp3)
        );
        assert_eq!(AudioFormat::sniff(b"%PDF-1.7"), None);
    }
}
