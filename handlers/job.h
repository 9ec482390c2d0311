#ifndef GW_JOB_H
#define GW_JOB_H
/* THE job state machine. A job has a source stage — a remote video through yt-dlp (handlers/source_remote.c) or a file
 * under LOCAL_MEDIA_DIR (handlers/source_local.c) — that yields metadata, a transcript and, when the analysis needs
 * it, a media file; then an analyzer stage — Gemini or the local analyzer (handlers/analyze.c) — then store.
 *
 *   INTAKE -> FETCH (remote: yt-dlp) | PROBE -> [SUBTITLES] -> TRANSCRIPT (local: ffprobe, subtitle extraction/parse)
 *          -> [CREDITS] (deep: reconcile for the real duration) -> [MEDIA] (download, duration probe, audio)
 *          -> [SCENES] (local analyzer, deep) | [UPLOAD] (Gemini with a file) -> ANALYZE -> CLEANUP -> DONE
 *
 * Every state change goes through gw_run_set_state, which checks it against one declared table: an impossible
 * transition is logged and, strict (debug builds, or GW_STRICT_STATES set), aborts; otherwise it is refused and the job
 * fails. Every outcome goes through CLEANUP: subprocesses, transfers, queries and thread-pool work are stopped or awaited,
 * the remote file is deleted, the scratch directory removed, and only then the outcome is reported.
 *
 * This header is the interface between job.c and its stage files; the daemon sees only gw_pipeline_init (app.h). */
#include "handlers/app.h"
#include "handlers/gemini.h"
#include "handlers/governor.h"
#include "handlers/localmedia.h"
#include "handlers/upload.h"
#include "handlers/video.h"
#include "reactor/pool.h"
#include "reactor/proc.h"
#include "reactor/work.h"
#include <limits.h>

#define GW_RUN_MAX_CHUNKS 32
#define GW_RUN_KILL_GRACE_MS 400 /* a cancel stops a download within a second */

typedef enum en_gw_run_state_t {
    GW_RUN_INTAKE,     /* created: URL or path checked, scratch directory made; nothing in flight */
    GW_RUN_FETCH,      /* remote: yt-dlp metadata + subtitles run; in deep mode the media download runs beside it */
    GW_RUN_PROBE,      /* local: ffprobe reads the file's streams and duration */
    GW_RUN_SUBTITLES,  /* local: ffmpeg extracts the embedded subtitle stream */
    GW_RUN_TRANSCRIPT, /* local: a subtitle file is parsed on the thread pool */
    GW_RUN_CREDITS,    /* deep: charging the difference for the real duration (one database call) */
    GW_RUN_MEDIA,      /* waiting for the media: download, ffprobe for an unknown duration, ffmpeg for the audio */
    GW_RUN_SCENES,     /* local analyzer, deep: ffmpeg scene detection on the video */
    GW_RUN_UPLOAD,     /* Files API: recording the remote row, uploading, polling until ACTIVE (handlers/upload) */
    GW_RUN_ANALYZE,    /* a Gemini call (or its backoff) for chunk `chunk` (== nchunks: the merge), or the local analyzer */
    GW_RUN_CLEANUP,    /* outcome decided: waiting for everything in flight, deleting the remote file */
    GW_RUN_DONE,       /* outcome reported; waiting for the timer to close, which frees the run */
    GW_RUN_NSTATES
} gw_run_state_t;

typedef enum en_gw_source_t {
    GW_SOURCE_REMOTE, /* a video URL, through yt-dlp */
    GW_SOURCE_LOCAL,  /* a file under LOCAL_MEDIA_DIR: nothing downloaded */
} gw_source_t;

typedef enum en_gw_media_kind_t {
    GW_MEDIA_NONE,  /* transcript-only standard job */
    GW_MEDIA_VIDEO, /* deep: the video itself */
    GW_MEDIA_AUDIO, /* standard without captions: a mono audio track */
} gw_media_kind_t;

typedef enum en_gw_outcome_t {
    GW_OUT_COMPLETE, /* result ready */
    GW_OUT_FAIL,     /* gw_job_fail with code/message/retry */
    GW_OUT_ABORT,    /* the queue asked us to stop: gw_job_aborted */
    GW_OUT_DEFER,    /* cannot run now for a reason outside the job: gw_job_defer (attempt not counted) */
    GW_OUT_REUSED,   /* the database completed it from another job's analysis (handlers/reuse.c): gw_job_settled */
    GW_OUT_WAITING,  /* the database put it back to PENDING to wait for another job's analysis, or it was not ours */
} gw_outcome_t;

typedef struct st_gw_run_t gw_run_t;
typedef void (*gw_run_proc_cb)(gw_run_t *run, const gw_proc_result_t *r);

/* The subprocess slots: a slot's continuation runs only while the run is not cleaning up. */
enum { GW_PROC_MAIN, GW_PROC_DOWNLOAD, GW_PROC_FFMPEG, GW_PROC_NSLOTS };

struct st_gw_run_t {
    uv_timer_t timer; /* first: backoff between Gemini attempts; its close callback frees the run */
    gw_job_t *job;
    gw_app_t *app;
    gw_run_state_t state;
    gw_source_t source;
    bool local_analyzer; /* ANALYZER=local (or auto without a key) */
    char scratch[PATH_MAX];
    /* in flight: cleanup waits until all are back */
    gw_proc_t *proc[GW_PROC_NSLOTS];
    gw_run_proc_cb proc_next[GW_PROC_NSLOTS];
    /* subprocess pool (reactor/pool.h): a spawn waits here for a slot; the slot is held until the proc ends */
    gw_pool_waiter_t proc_wait[GW_PROC_NSLOTS];
    gw_pool_t *proc_pool[GW_PROC_NSLOTS]; /* the pool a queued or running slot belongs to */
    bool proc_media[GW_PROC_NSLOTS];      /* a media run: holds a media slot besides its main one */
    struct {
        char **argv;
        uint64_t timeout_ms;
        size_t out_cap, err_cap;
    } proc_pending[GW_PROC_NSLOTS];
    gw_fetch_t *req;      /* Gemini call or the remote DELETE */
    gw_gov_ticket_t *gov; /* GOVERNOR HOOK: a Gemini call waiting for its turn (gov_body is sent then) */
    char *gov_body;
    int64_t gov_est; /* tokens the governor reserved for the call in flight */
    gw_upload_t *up;
    gw_work_t *work;
    unsigned pg_inflight;
    /* source */
    char language[36]; /* the job's output language (BCP-47); "" = the transcript's */
    char video_id[16];
    char *url;            /* remote: normalised URL */
    char *path;           /* local: the resolved file */
    char root[PATH_MAX];  /* local: LOCAL_MEDIA_DIR, resolved */
    gw_probe_info_t info; /* local: ffprobe's streams */
    gw_video_meta_t meta;
    gw_transcript_t tr;
    /* media */
    gw_media_kind_t media;
    bool dl_done, youtube_source, reuploaded, probed;
    bool bot_fallback;  /* BOT_CHECK_FALLBACK=gemini_url: a standard job analysed from the YouTube URL (source_remote.c) */
    bool breaker_probe; /* this run's metadata run is the bot-check breaker's half-open probe */
    const char *dl_code, *dl_msg; /* download failure noticed while the metadata run was still going */
    bool dl_transient;
    char media_path[PATH_MAX];
    uint64_t media_size;
    double *scenes;
    size_t nscenes;
    /* remote file (Files API) */
    char display[80];
    bool remote_recorded;
    char *file_name, *file_uri;
    const char *file_mime;
    /* analysis */
    size_t bounds[GW_RUN_MAX_CHUNKS + 1], nchunks, chunk;
    double clip_len; /* deep segments: seconds per chunk; 0 = chunks are transcript chunks */
    json_t *partials[GW_RUN_MAX_CHUNKS];
    unsigned attempt;
    bool reasked, big_budget;
    gw_usage_t usage;
    char model_version[96];
    json_t *timings;
    uint64_t stage_started, run_started;
    /* outcome */
    gw_outcome_t outcome;
    json_t *result;
    char code[64], message[320];
    int64_t retry_ms;
};

/* ---- the machine (job.c) ---- */

/* True when the declared table allows from -> to. */
bool gw_run_transition_legal(gw_run_state_t from, gw_run_state_t to);
const char *gw_run_state_name(gw_run_state_t s);
/* Strict: an impossible transition or an error code missing from the catalogue aborts the process. Debug builds always;
 * release builds when GW_STRICT_STATES is set (the integration tests set it). */
bool gw_run_strict(void);
/* The one place the state changes. An illegal transition is logged; strict, it aborts; otherwise it is refused and
 * returns false (the caller stops; the job then fails as "internal_error" through CLEANUP). */
bool gw_run_set_state(gw_run_t *run, gw_run_state_t to);

/* Outcomes: each stops what is in flight (CLEANUP) and reports once everything is back. code must be in the catalogue
 * (handlers/errors.c): strict (gw_run_strict), an unknown one aborts. */
void gw_run_fail(gw_run_t *run, const char *code, const char *message, bool transient, int64_t floor_ms);
void gw_run_complete(gw_run_t *run, json_t *result); /* takes the reference */
/* Back to PENDING after delay_ms, the attempt not counted (the bot-check breaker is open, Gemini refused the key). */
void gw_run_defer(gw_run_t *run, const char *code, const char *message, int64_t delay_ms);
/* The database already settled the job (GW_OUT_REUSED or GW_OUT_WAITING): clean up and let the queue forget it. */
void gw_run_settled(gw_run_t *run, gw_outcome_t o);

/* Stage timing (timings JSON, metrics, log) and the job's visible stage. */
void gw_run_stage_begin(gw_run_t *run, const char *stage);
void gw_run_stage_end(gw_run_t *run, const char *stage);
void gw_run_stage_time(gw_run_t *run, const char *stage, double seconds);

/* Spawns argv into a slot once the subprocess pool grants one (FIFO; at once when free); next runs when it ends (not
 * during cleanup, which only awaits it; a cleanup drops a spawn still queued). Frees argv. */
void gw_run_spawn(gw_run_t *run, int slot, char **argv, uint64_t timeout_ms, size_t out_cap, size_t err_cap, gw_run_proc_cb next);
/* A slot's subprocess is running or still waiting for the pool: either way it must not be spawned again. */
bool gw_run_proc_active(const gw_run_t *run, int slot);
/* Runs fn(arg) on the thread pool; next(run, arg) on the loop afterwards (not during cleanup: then free_arg(arg)). */
void gw_run_offload(gw_run_t *run, gw_work_fn fn, void *arg, void (*next)(gw_run_t *, void *), void (*free_arg)(void *));
/* A database call: the callback's PGresult goes to next unless the run is cleaning up. */
void gw_run_pg_begin(gw_run_t *run);
bool gw_run_pg_end(gw_run_t *run); /* true when the caller may go on (not cleaning up) */

gw_pg_t *gw_run_pg(gw_run_t *run); /* NULL for `glint-worker analyze` (no database) */
void gw_run_forget_remote(gw_run_t *run);
char **gw_run_split_langs(const char *csv);
void gw_run_free_langs(char **langs);

/* The pipeline's entry points (handlers/pipeline.c): a claimed job starts; an abort stops it (gw_job_aborted follows). */
void gw_run_start(gw_app_t *app, gw_job_t *job);
void gw_run_abort(gw_job_t *job);

/* The subprocess pools shared by every job (MAX_SUBPROCESSES: all runs; MAX_MEDIA_SUBPROCESSES: downloads and scene
 * detection, which may take minutes). Sized from cfg on first use; NULL before. */
void gw_run_pools_init(const gw_settings_t *cfg);
const gw_pool_t *gw_run_pool(bool media);
/* The daemon's 250 ms tick: an adaptive pool (MAX_SUBPROCESSES=0) samples idle CPU and moves its limit one step. */
void gw_run_pools_tick(void);

/* ---- source stages ---- */

void gw_source_remote_start(gw_run_t *run);     /* intake done: yt-dlp */
void gw_source_remote_download(gw_run_t *run);  /* the media download (deep video, or standard's audio source) */
bool gw_source_local_intake(gw_run_t *run);     /* path guard; false when the run already failed */
void gw_source_local_start(gw_run_t *run);      /* ffprobe -> transcript */
void gw_source_media_downloaded(gw_run_t *run); /* the download ended (its outcome is in dl_code / media_path) */
void gw_source_await_media(gw_run_t *run);      /* enters MEDIA: download (remote) / audio (both) / duration probe */
void gw_source_after_metadata(gw_run_t *run);   /* metadata and transcript known: credits (deep), then the analyzer */

/* ---- analyzer stage (analyze.c) ---- */

void gw_analyze_media_ready(gw_run_t *run); /* the media file is here: scenes (local) or upload (Gemini) */
void gw_analyze_begin(gw_run_t *run);       /* ANALYZE: Gemini over the transcript/file, or the local analyzer */
void gw_analyze_start_upload(gw_run_t *run);

#endif
