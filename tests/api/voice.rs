use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::helpers::{Resp, TestApp, assert_problem};
use crate::on_both;

/// A mono 16-bit PCM WAV of `seconds` of a 440 Hz tone at 8 kHz.
fn wav(seconds: f64) -> Vec<u8> {
    let rate = 8_000u32;
    let samples: Vec<i16> = (0..(rate as f64 * seconds) as usize)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / rate as f64).sin() * 8_000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::new();
    out.extend(b"RIFF");
    out.extend((36 + data_len).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(rate.to_le_bytes());
    out.extend((rate * 2).to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(16u16.to_le_bytes());
    out.extend(b"data");
    out.extend(data_len.to_le_bytes());
    for s in samples {
        out.extend(s.to_le_bytes());
    }
    out
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, language: Option<&str>) -> Resp {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name("clip.wav"));
    if let Some(l) = language {
        form = form.text("language", l.to_owned());
    }
    app.multipart("/api/chat/voice/transcribe", token, form)
        .await
}

async fn synthesize(app: &TestApp, token: &str, body: serde_json::Value) -> (u16, String, Vec<u8>) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/chat/voice/synthesize", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, res.bytes().await.unwrap().to_vec())
}

async fn voice_with_providers(app: TestApp) {
    let alice = app.register("alice").await;
    let r = upload(&app, &alice.token, wav(0.5), Some("en")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"text": "hello from the microphone", "language": "en", "duration": 1.25})
    );
    assert_problem(
        &upload(&app, &alice.token, b"%PDF-1.7 not audio".to_vec(), None).await,
        415,
    );
    assert_problem(&upload(&app, &alice.token, wav(1.0), None).await, 413);
    assert_problem(
        &upload(&app, &alice.token, wav(0.1), Some("english!")).await,
        422,
    );
    let no_file = reqwest::Client::new()
        .post(format!("{}/api/chat/voice/transcribe", app.base))
        .bearer_auth(&alice.token)
        .multipart(Form::new().text("language", "en"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status().as_u16(), 422);

    let (status, kind, audio) = synthesize(
        &app,
        &alice.token,
        json!({"text": "Hello", "voice": "alloy", "format": "mp3"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(kind, "audio/mpeg");
    assert!(
        audio.starts_with(b"RIFF"),
        "the provider's bytes are passed through"
    );
    let (status, _, _) = synthesize(&app, &alice.token, json!({"text": ""})).await;
    assert_eq!(status, 422);
    let (status, _, _) =
        synthesize(&app, &alice.token, json!({"text": "x", "format": "flac"})).await;
    assert_eq!(status, 422);
    let anonymous = reqwest::Client::new()
        .post(format!("{}/api/chat/voice/synthesize", app.base))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}
on_both!(voice_with_providers, |c: &mut nova_host::Config| {
    c.stt_base_url = Some(crate::helpers::mock_ai());
    c.tts_base_url = Some(crate::helpers::mock_ai());
    c.max_audio_bytes = 12_000;
});

async fn voice_without_providers(app: TestApp) {
    let alice = app.register("alice").await;
    // A field the endpoint does not know is refused by name (before any provider is asked).
    let typo = Form::new()
        .part("file", Part::bytes(wav(0.2)).file_name("clip.wav"))
        .text("lang", "en");
    let r = app
        .multipart("/api/chat/voice/transcribe", &alice.token, typo)
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "lang");
    let r = upload(&app, &alice.token, wav(0.2), None).await;
    assert_problem(&r, 503);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("NOVA_STT_BASE_URL")
    );
    let (status, _, body) =
        synthesize(&app, &alice.token, json!({"text": "Hi", "format": "mp3"})).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("NOVA_TTS_BASE_URL"));

    // espeak-ng, when installed (CI installs it), speaks WAV locally.
    if app_has_espeak() {
        let (status, kind, audio) = synthesize(
            &app,
            &alice.token,
            json!({"text": "Your order has shipped.", "voice": "en-us"}),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&audio));
        assert_eq!(kind, "audio/wav");
        assert!(audio.starts_with(b"RIFF") && &audio[8..12] == b"WAVE");
        assert!(
            audio.len() > 8_000,
            "about a second of speech, got {} bytes",
            audio.len()
        );
        let (status, _, _) = synthesize(
            &app,
            &alice.token,
            json!({"text": "Hi", "voice": "xx-nonexistent"}),
        )
        .await;
        assert_eq!(status, 422);
    }
}
on_both!(voice_without_providers);

fn app_has_espeak() -> bool {
    let found = nova_host::Config::from_sources(None, &|_| None)
        .map(|c| c.espeak_path.is_some())
        .unwrap_or(false);
    if !found {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: espeak-ng is not installed: local speech synthesis is not tested"
        );
    }
    found
}

async fn espeak_off(app: TestApp) {
    let alice = app.register("alice").await;
    let (status, _, body) = synthesize(&app, &alice.token, json!({"text": "Hi"})).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("NOVA_TTS_BASE_URL"));
}
on_both!(espeak_off, |c: &mut nova_host::Config| c.espeak_path = None);
