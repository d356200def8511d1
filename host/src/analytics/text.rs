//! What a user message says, computed once when it is written: sentiment (a lexicon-based
//! scorer with negation and intensifiers, in the manner of VADER), intent, topics, and the
//! normalised form of a question for grouping.

use std::collections::BTreeMap;

/// Word valences from −4 (very negative) to +4 (very positive).
const LEXICON: &[(&str, f64)] = &[
    ("abysmal", -3.5),
    ("angry", -3.0),
    ("annoyed", -2.0),
    ("annoying", -2.2),
    ("awful", -3.1),
    ("bad", -2.5),
    ("broken", -2.3),
    ("bug", -1.5),
    ("buggy", -2.2),
    ("cancel", -1.0),
    ("charged", -0.8),
    ("complain", -1.9),
    ("complaint", -1.9),
    ("confused", -1.3),
    ("confusing", -1.5),
    ("crash", -2.3),
    ("crashes", -2.3),
    ("damaged", -2.4),
    ("delay", -1.4),
    ("delayed", -1.6),
    ("disappointed", -2.4),
    ("disappointing", -2.4),
    ("disgusting", -3.2),
    ("dislike", -1.9),
    ("error", -1.6),
    ("expensive", -1.2),
    ("fail", -2.3),
    ("failed", -2.3),
    ("failure", -2.5),
    ("frustrated", -2.4),
    ("frustrating", -2.4),
    ("furious", -3.3),
    ("garbage", -2.9),
    ("hate", -3.0),
    ("horrible", -3.2),
    ("issue", -1.0),
    ("lost", -1.6),
    ("mad", -2.2),
    ("mess", -2.0),
    ("missing", -1.5),
    ("never", -0.5),
    ("overcharged", -2.5),
    ("poor", -2.3),
    ("problem", -1.6),
    ("refund", -0.6),
    ("rude", -2.7),
    ("sad", -2.1),
    ("scam", -3.3),
    ("slow", -1.6),
    ("stuck", -1.8),
    ("terrible", -3.1),
    ("unacceptable", -2.9),
    ("unhappy", -2.4),
    ("upset", -2.3),
    ("useless", -2.8),
    ("waste", -2.4),
    ("worse", -2.5),
    ("worst", -3.1),
    ("wrong", -2.1),
    ("amazing", 2.8),
    ("appreciate", 2.2),
    ("awesome", 3.1),
    ("best", 3.0),
    ("better", 1.9),
    ("brilliant", 3.0),
    ("clear", 1.2),
    ("cool", 1.3),
    ("delighted", 3.0),
    ("easy", 1.9),
    ("excellent", 3.2),
    ("fantastic", 3.1),
    ("fast", 1.4),
    ("fine", 0.8),
    ("fixed", 1.3),
    ("friendly", 2.2),
    ("glad", 2.0),
    ("good", 1.9),
    ("great", 3.1),
    ("happy", 2.7),
    ("helpful", 2.4),
    ("impressed", 2.5),
    ("love", 3.2),
    ("lovely", 2.8),
    ("nice", 1.8),
    ("perfect", 3.1),
    ("pleased", 2.5),
    ("quick", 1.3),
    ("recommend", 2.0),
    ("resolved", 1.7),
    ("satisfied", 2.2),
    ("smooth", 1.6),
    ("solved", 1.8),
    ("super", 2.4),
    ("thank", 1.8),
    ("thanks", 1.9),
    ("useful", 1.9),
    ("welcome", 1.5),
    ("wonderful", 3.0),
    ("works", 1.2),
];

const NEGATORS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot",
    "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent", "wont", "wouldnt", "cant",
    "couldnt", "shouldnt", "hasnt", "havent", "hadnt",
];

const BOOSTERS: &[(&str, f64)] = &[
    ("very", 0.293),
    ("really", 0.293),
    ("extremely", 0.4),
    ("so", 0.2),
    ("too", 0.2),
    ("absolutely", 0.4),
    ("totally", 0.3),
    ("completely", 0.3),
    ("incredibly", 0.4),
    ("slightly", -0.293),
    ("somewhat", -0.2),
    ("barely", -0.3),
    ("kinda", -0.2),
];

/// Lower-case word tokens, with apostrophes dropped (`don't` → `dont`).
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['\'', '’'], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sentiment in −1…1: each known word's valence, scaled by a booster just before it and
/// flipped (×−0.74) when a negator stands within the three words before it; the sum is
/// normalised as `s / sqrt(s² + 15)`. Exclamation marks strengthen it a little.
pub fn sentiment(text: &str) -> f64 {
    let tokens = words(text);
    let mut sum = 0.0;
    for (i, word) in tokens.iter().enumerate() {
        let Some(&(_, mut valence)) = LEXICON.iter().find(|(w, _)| w == word) else {
            continue;
        };
        if i > 0
            && let Some(&(_, boost)) = BOOSTERS.iter().find(|(b, _)| *b == tokens[i - 1])
        {
            valence += boost * valence.signum();
        }
        let window = &tokens[i.saturating_sub(3)..i];
        if window.iter().any(|w| NEGATORS.contains(&w.as_str())) {
            valence *= -0.74;
        }
        sum += valence;
    }
    let bangs = text.matches('!').count().min(4) as f64;
    if sum != 0.0 {
        sum += sum.signum() * bangs * 0.292;
    }
    if sum == 0.0 {
        0.0
    } else {
        sum / (sum * sum + 15.0).sqrt()
    }
}

/// `positive`, `neutral` or `negative`.
pub fn sentiment_label(score: f64) -> &'static str {
    if score >= 0.05 {
        "positive"
    } else if score <= -0.05 {
        "negative"
    } else {
        "neutral"
    }
}

const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "greetings",
    "morning",
    "evening",
    "afternoon",
    "howdy",
];
const PURCHASE: &[&str] = &[
    "buy",
    "purchase",
    "price",
    "pricing",
    "cost",
    "quote",
    "subscribe",
    "subscription",
    "plan",
    "upgrade",
    "order",
    "checkout",
    "discount",
    "trial",
    "license",
];
const CANCEL: &[&str] = &["cancel", "unsubscribe", "terminate", "close"];
const COMPLAINT: &[&str] = &[
    "complain",
    "complaint",
    "unacceptable",
    "terrible",
    "awful",
    "worst",
    "broken",
    "refund",
    "overcharged",
    "angry",
    "frustrated",
    "disappointed",
];
const REQUEST_STARTS: &[&str] = &[
    "please",
    "can",
    "could",
    "would",
    "will",
    "i want",
    "i need",
    "id like",
    "i would like",
    "help me",
];
const QUESTION_STARTS: &[&str] = &[
    "what", "why", "how", "when", "where", "who", "which", "is", "are", "do", "does", "did", "can",
    "could", "should", "will", "would",
];

/// The intent of a user message: greeting, complaint, cancellation, purchase, question,
/// request, feedback or statement.
pub fn intent(text: &str, sentiment: f64) -> &'static str {
    let tokens = words(text);
    let joined = tokens.join(" ");
    let has = |list: &[&str]| tokens.iter().any(|t| list.contains(&t.as_str()));
    let first = tokens.first().map(String::as_str).unwrap_or("");
    if tokens.len() <= 4 && GREETINGS.contains(&first) {
        return "greeting";
    }
    if has(COMPLAINT) || sentiment <= -0.5 {
        return "complaint";
    }
    if has(CANCEL) && !text.contains('?') {
        return "cancellation";
    }
    if has(PURCHASE) {
        return "purchase";
    }
    if text.trim_end().ends_with('?') || QUESTION_STARTS.contains(&first) {
        return "question";
    }
    if REQUEST_STARTS.iter().any(|r| joined.starts_with(r)) || has(&["please"]) {
        return "request";
    }
    if sentiment >= 0.3 {
        return "feedback";
    }
    "statement"
}

/// The default topics and their keywords, used until a workspace sets its own.
pub fn default_topics() -> BTreeMap<String, Vec<String>> {
    [
        (
            "billing",
            &[
                "bill",
                "billing",
                "invoice",
                "charge",
                "charged",
                "payment",
                "refund",
                "price",
                "pricing",
                "subscription",
                "card",
            ][..],
        ),
        (
            "shipping",
            &[
                "shipping",
                "delivery",
                "deliver",
                "delivered",
                "package",
                "tracking",
                "shipped",
                "courier",
                "order",
            ][..],
        ),
        (
            "account",
            &[
                "account", "login", "password", "sign", "email", "profile", "username", "2fa",
            ][..],
        ),
        (
            "technical",
            &[
                "error",
                "bug",
                "crash",
                "crashes",
                "broken",
                "install",
                "update",
                "slow",
                "api",
                "integration",
            ][..],
        ),
        (
            "product",
            &[
                "feature", "product", "plan", "demo", "trial", "upgrade", "compare",
            ][..],
        ),
    ]
    .into_iter()
    .map(|(t, ws)| (t.to_owned(), ws.iter().map(|w| (*w).to_owned()).collect()))
    .collect()
}

/// The topics whose keywords the message contains.
pub fn topics(text: &str, topics: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let tokens = words(text);
    topics
        .iter()
        .filter(|(_, keywords)| keywords.iter().any(|k| tokens.contains(k)))
        .map(|(t, _)| t.clone())
        .collect()
}

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "i", "me", "my", "we", "our", "you", "your", "it", "its", "is", "are", "was",
    "were", "be", "been", "am", "do", "does", "did", "to", "of", "in", "on", "for", "at", "by",
    "with", "and", "or", "but", "so", "can", "could", "would", "should", "will", "please", "hi",
    "hello", "hey", "there", "this", "that", "these", "those", "how", "what", "when", "where",
    "why", "which", "who", "any", "some", "get", "got", "just", "about", "up", "if",
];

/// The stemmed content words of a text (stop words dropped), de-duplicated, in order.
pub fn content_terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words(text) {
        if STOPWORDS.contains(&w.as_str()) {
            continue;
        }
        let s = stem(&w);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// A question's grouping key: its content words, lightly stemmed, sorted and de-duplicated.
/// "How do I reset my password?" and "password reset — how?" share `password reset`.
pub fn question_key(text: &str) -> Option<String> {
    let mut key = content_terms(text);
    key.sort();
    key.truncate(8);
    (!key.is_empty()).then(|| key.join(" "))
}

fn stem(word: &str) -> String {
    for suffix in ["ing", "ed", "es", "s"] {
        if word.len() > suffix.len() + 2
            && let Some(stemmed) = word.strip_suffix(suffix)
        {
            return stemmed.to_owned();
        }
    }
    word.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentiment_reads_negation_and_boosters() {
        assert!(sentiment("The support was great, thanks!") > 0.5);
        assert!(sentiment("This is terrible and I am angry") < -0.5);
        assert!(sentiment("not good at all") < 0.0, "negation flips");
        assert!(sentiment("I don't hate it") > 0.0);
        assert!(sentiment("very good") > sentiment("good"));
        assert_eq!(sentiment("My order number is 42"), 0.0);
        assert_eq!(sentiment_label(sentiment("What time is it")), "neutral");
    }

    #[test]
    fn intents() {
        assert_eq!(intent("Hello there", 0.0), "greeting");
        assert_eq!(intent("How do I reset my password?", 0.0), "question");
        assert_eq!(
            intent("This is unacceptable, I want a refund", -0.6),
            "complaint"
        );
        assert_eq!(intent("I'd like to buy the pro plan", 0.0), "purchase");
        assert_eq!(intent("Please cancel my account", 0.0), "cancellation");
        assert_eq!(intent("Please send me the invoice copy", 0.0), "request");
        assert_eq!(intent("Great job, really helpful", 0.8), "feedback");
    }

    #[test]
    fn questions_group_by_content() {
        assert_eq!(
            question_key("How do I reset my password?"),
            question_key("Password reset — how?")
        );
        assert_eq!(
            question_key("How do I reset my password?").as_deref(),
            Some("password reset")
        );
        assert_eq!(question_key("how?"), None);
    }

    #[test]
    fn topics_match_keywords() {
        let t = default_topics();
        assert_eq!(topics("I was charged twice on my invoice", &t), ["billing"]);
        assert!(topics("good morning", &t).is_empty());
    }
}
