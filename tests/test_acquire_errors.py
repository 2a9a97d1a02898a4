"""Error classes of failed tries, with YouTube's texts of today as yt-dlp reports them, and
the shard pause of a rate-limited try (no server: the attempt raises)."""

import email.utils
import io
import time
import urllib.error

import pytest

from avmae.acquire.download import (
    BLOCKED,
    RATE_LIMITED,
    TRANSIENT,
    UNAVAILABLE,
    Batch,
    Policy,
    RateLimited,
    error_kind,
    failure,
    one_line,
    retry_after,
)

# yt-dlp's cookie hint, appended to every YouTube reason that says "sign in"
# (YoutubeBaseInfoExtractor._youtube_login_hint; two spaces around the URLs are yt-dlp's)
HINT = ("Use --cookies-from-browser or --cookies for the authentication. See  "
        "https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to "
        "manually pass cookies. Also see  https://github.com/yt-dlp/yt-dlp/wiki/Extractors"
        "#exporting-youtube-cookies  for tips on effectively exporting YouTube cookies")
RATE_LIMIT_TAIL = (
    "has been rate-limited by YouTube for up to an hour. It is recommended to use `-t sleep` "
    "to add a delay between video requests to avoid exceeding the rate limit. For more "
    "information, refer to  https://github.com/yt-dlp/yt-dlp/wiki/Extractors"
    "#this-content-isnt-available-try-again-later")
YT = "ERROR: [youtube] dQw4w9WgXcQ: "

# (message as str(yt_dlp.utils.DownloadError), class, what)
MESSAGES = [
    # bot check: YouTube's curly apostrophe, and the text without yt-dlp's hint
    (YT + "Sign in to confirm you\u2019re not a bot. " + HINT, BLOCKED, "bot check"),
    (YT + "Sign in to confirm you're not a bot. This helps protect our community. Learn more",
     BLOCKED, "bot check"),
    # sign-in required (CommonInfoExtractor.raise_login_required's default; members-only)
    (YT + "This video is only available for registered users. " + HINT, UNAVAILABLE, "sign-in required"),
    (YT + "Join this channel to get access to members-only content like this video, and other "
          "exclusive perks.", UNAVAILABLE, "sign-in required"),
    (YT + "Private video. Sign in if you've been granted access to this video. " + HINT,
     UNAVAILABLE, "private"),
    (YT + "Video unavailable. This video is private", UNAVAILABLE, "private"),
    (YT + "Video unavailable", UNAVAILABLE, "removed"),
    (YT + "Video unavailable. This video has been removed by the uploader", UNAVAILABLE, "removed"),
    (YT + "Video unavailable. This video is no longer available due to a copyright claim by "
          "SME", UNAVAILABLE, "removed"),
    (YT + "This video has been removed for violating YouTube's Terms of Service", UNAVAILABLE, "removed"),
    (YT + "Video unavailable. This video is no longer available because the YouTube account "
          "associated with this video has been terminated.", UNAVAILABLE, "account terminated"),
    (YT + "Sign in to confirm your age. This video may be inappropriate for some users. " + HINT,
     UNAVAILABLE, "age-restricted"),
    # geo block: GeoRestrictedError as YoutubeDL reports it (three lines)
    (("ERROR: [youtube] dQw4w9WgXcQ: The uploader has not made this video available in your country\n"
      "This video is available in Germany, France.\nYou might want to use a VPN or a proxy server "
      "(with --proxy) to workaround."), UNAVAILABLE, "geo-blocked"),
    (YT + "Video unavailable. The uploader has not made this video available in your country",
     UNAVAILABLE, "geo-blocked"),
    ("ERROR: This video is not available from your location due to geo restriction",
     UNAVAILABLE, "geo-blocked"),
    (YT + "Premieres in 2 hours", TRANSIENT, "premiere"),
    (YT + "Premiere will begin shortly", TRANSIENT, "premiere"),
    (YT + "This live event will begin in 3 hours.", TRANSIENT, "live event"),
    (YT + "This live event will begin in a few moments.", TRANSIENT, "live event"),
    # rate limit: yt-dlp's context for a guest session and an account
    (YT + "Video unavailable. This content isn't available, try again later. The current "
          "session " + RATE_LIMIT_TAIL, RATE_LIMITED, "YouTube rate limit"),
    (YT + "Video unavailable. This content isn't available, try again later. Your account "
          + RATE_LIMIT_TAIL, RATE_LIMITED, "YouTube rate limit"),
    (YT + "This content isn\u2019t available, try again later.", RATE_LIMITED, "YouTube rate limit"),
    (("ERROR: [generic] x: Unable to download webpage: HTTP Error 429: Too Many Requests (caused "
      "by <HTTPError 429: Too Many Requests>)"), RATE_LIMITED, "HTTP 429"),
    # the client, not the clip: format URLs refused without a PO token, formats missing
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", BLOCKED,
     "video data refused (PO token?)"),
    (YT + "Requested format is not available. Use --list-formats for a list of available formats",
     BLOCKED, "no usable format (JS runtime?)"),
    (("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found (caused by "
      "<HTTPError 404: Not Found>)"), UNAVAILABLE, "not found"),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable",
     TRANSIENT, "server or network"),
    ("ERROR: [generic] x: Unable to download webpage: The read operation timed out",
     TRANSIENT, "server or network"),
    ("ERROR: ffmpeg exited with code 1", TRANSIENT, "unrecognised"),
]


@pytest.mark.parametrize("message, cls, what", MESSAGES, ids=[f"{m[2]}-{i}" for i, m in enumerate(MESSAGES)])
def test_youtube_messages_map_to_their_class(message, cls, what):
    kind = error_kind(one_line(Exception(message)))
    assert (kind.cls, kind.what) == (cls, what)
    if cls == RATE_LIMITED:   # a rate limit is not a clip's failure: the shard pauses
        with pytest.raises(RateLimited):
            failure(Exception(message))
    else:                     # the status a try ends in (blocked: failed, not retried now)
        assert failure(Exception(message))[0] == {UNAVAILABLE: "unavailable", BLOCKED: "blocked"}.get(cls, "failed")


def test_failure_statuses_and_rate_limits():
    assert failure(Exception(YT + "Private video. Sign in if you've been granted access"))[0] == "unavailable"
    assert failure(Exception(YT + "Sign in to confirm you\u2019re not a bot."))[0] == "blocked"
    assert failure(Exception(YT + "Premieres in 2 hours"))[0] == "failed"
    with pytest.raises(RateLimited) as caught:
        failure(Exception(YT + "Video unavailable. This content isn't available, try again later."))
    assert caught.value.seconds is None and caught.value.what == "YouTube rate limit"


def http_error(code, headers):
    return urllib.error.HTTPError("http://x/", code, "Too Many Requests", headers, io.BytesIO())


def test_retry_after_seconds_and_dates_through_wrapping():
    assert retry_after(http_error(429, {"Retry-After": "120"})) == 120.0
    later = email.utils.formatdate(time.time() + 90, usegmt=True)
    assert 85 <= retry_after(http_error(429, {"Retry-After": later})) <= 91
    assert retry_after(http_error(429, {})) is None
    try:  # found through __cause__, as yt-dlp's wrappers chain it
        try:
            raise http_error(429, {"Retry-After": "7"})
        except urllib.error.HTTPError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as wrapped:
        assert retry_after(wrapped) == 7.0
    with pytest.raises(RateLimited) as caught:
        failure(http_error(429, {"Retry-After": "3"}))
    assert caught.value.seconds == 3.0


def test_youtube_rate_limit_pauses_for_the_default_and_does_not_count(tmp_path, caplog):
    """No Retry-After (YouTube's message): the shard pauses Policy.pause; the rate-limited
    tries are not tries of the clip."""
    batch = Batch(tmp_path / "manifest.csv", Policy(pause=0.3, sleep=0, videos_per_hour=0, retries=0))
    answers = iter([RateLimited("This content isn't available, try again later", None, "YouTube rate limit")] * 2
                   + [("ok", "clip.mp4")])

    def attempt():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    t0 = time.monotonic()
    result, tries = batch.retry(attempt, lambda why: ("failed", why))
    assert result == ("ok", "clip.mp4") and tries == 1
    assert time.monotonic() - t0 >= 0.55
    timeline = batch.pause.timeline
    assert [(p["seconds"], p["source"], p["what"]) for p in timeline] == [(0.3, "default pause", "YouTube rate limit")] * 2
    assert all(p["resumed_at"] - p["paused_at"] >= 0.29 for p in timeline)
    assert batch.pause.in_a_row == 0  # the ok answer ends the run of pauses
    assert not batch.blocked


def test_blocked_is_not_retried_now(tmp_path):
    batch = Batch(tmp_path / "manifest.csv", Policy(retries=3, backoff=0, sleep=0, videos_per_hour=0))
    calls = []

    def attempt():
        calls.append(1)
        return failure(Exception(YT + "Sign in to confirm you\u2019re not a bot."))

    (status, reason), tries = batch.retry(attempt, lambda why: ("failed", why))
    assert (status, tries, len(calls)) == ("failed", 1, 1) and "not a bot" in reason
