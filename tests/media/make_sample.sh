#!/usr/bin/env bash
# Renders the sample video used by the demo and the local-media tests, on this machine, from nothing downloaded:
# four slides (text, and a bar chart drawn with drawbox) narrated by espeak-ng, a WebVTT file whose cues match the
# narration, the same cues embedded as a subtitle stream, and one chapter per slide.
#   make_sample.sh OUTDIR   writes OUTDIR/glint-sample.mp4 and OUTDIR/glint-sample.vtt; prints the .mp4 path
# Idempotent: reuses the output when it was made by this very script (a stamp holds the script's checksum).
set -euo pipefail
out=${1:?usage: make_sample.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
mp4=$out/glint-sample.mp4 vtt=$out/glint-sample.vtt stamp=$out/.glint-sample.stamp
sum=$(sha256sum "$0" | cut -c1-16)
exec 9>"$out/.glint-sample.lock"
flock 9 # the demo and the tests may render into the same directory at once
if [ -s "$mp4" ] && [ -s "$vtt" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    echo "$mp4"
    exit 0
fi
for tool in ffmpeg ffprobe espeak-ng; do
    command -v "$tool" >/dev/null || { echo "make_sample.sh: $tool is missing (docker/deps.sh demo installs it)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/glint-sample.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The narration: slide number, then what is said. Written for this project.
cues=(
"1|Welcome to a short tour of Glint Worker."
"1|It is a small program, written in C, that turns videos into written analyses."
"1|Everything in this clip was rendered on this machine, and the voice is a speech synthesizer."
"2|A backend inserts a job into PostgreSQL, and a trigger sends a notification."
"2|The worker claims the job with skip locked, so two workers never take the same one."
"2|A lease, renewed by a heartbeat, keeps the claim alive while the video is processed."
"3|This chart shows where the time goes in a typical job."
"3|Reading the metadata and the subtitles takes a few seconds."
"3|The analysis is the tallest bar, because the whole transcript is read and summarized."
"3|Saving the result takes only milliseconds."
"4|Every job costs credits, which are charged when it is enqueued."
"4|If a job fails for good, its credits are refunded in the same transaction, exactly once."
"4|Thank you for watching this demonstration."
)
titles=("" "Glint Worker" "How a job flows" "Time per stage" "Credits and failures")

ts() { awk -v t="$1" 'BEGIN { h = int(t / 3600); m = int((t % 3600) / 60); s = t - 3600 * h - 60 * m; printf "%02d:%02d:%06.3f", h, m, s }'; }

ffmpeg -nostdin -v error -f lavfi -i anullsrc=r=22050:cl=mono -t 0.4 -c:a pcm_s16le "$work/gap.wav"
: >"$work/list.txt"
printf 'WEBVTT\n\n' >"$vtt.tmp"
t=0
declare -a slide_start
i=0
for cue in "${cues[@]}"; do
    slide=${cue%%|*} text=${cue#*|}
    [ -n "${slide_start[$slide]:-}" ] || slide_start[$slide]=$t
    espeak-ng -v en-us -s 170 -w "$work/cue$i.wav" -- "$text"
    d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$work/cue$i.wav")
    end=$(awk -v a="$t" -v b="$d" 'BEGIN { printf "%.3f", a + b }')
    printf '%s --> %s\n%s\n\n' "$(ts "$t")" "$(ts "$end")" "$text" >>"$vtt.tmp"
    printf "file '%s'\nfile '%s'\n" "$work/cue$i.wav" "$work/gap.wav" >>"$work/list.txt"
    t=$(awk -v a="$end" 'BEGIN { printf "%.3f", a + 0.4 }')
    i=$((i + 1))
done
total=$t
ffmpeg -nostdin -v error -f concat -safe 0 -i "$work/list.txt" -c copy "$work/narration.wav"

# Chapters (ffmetadata, milliseconds) and the title.
{
    echo ";FFMETADATA1"
    echo "title=Glint Worker in one minute"
    echo "artist=Glint Worker sample generator"
    for s in 1 2 3 4; do
        next=$([ "$s" -lt 4 ] && echo "${slide_start[$((s + 1))]}" || echo "$total")
        printf '[CHAPTER]\nTIMEBASE=1/1000\nSTART=%d\nEND=%d\ntitle=%s\n' \
            "$(awk -v a="${slide_start[$s]}" 'BEGIN { printf "%d", a * 1000 }')" \
            "$(awk -v a="$next" 'BEGIN { printf "%d", a * 1000 }')" "${titles[$s]}"
    done
} >"$work/meta.txt"

# Slides: text from files (no filtergraph escaping of the words), shown between the slide's start and the next one.
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
[ -f "$font" ] || font=$(fc-match -f '%{file}' sans 2>/dev/null || true)
body=(""
"A video analysis worker in C\none event loop, PostgreSQL as the queue"
"insert  ->  notify  ->  claim (skip locked)\nlease + heartbeat  ->  analyse  ->  save"
""
"charge on enqueue\nrefund on final failure, exactly once")
# each slide has its own background, so a slide change is a visual change that scene detection can see
# (dark and light in turn: ffmpeg's scene score of a dark-to-dark change stays under the threshold)
bg=("" 0x14213d 0xf0e6d2 0x1b3a2b 0xdde8f0)
fg=("" white 0x14213d white 0x14213d)
vf=""
for s in 1 2 3 4; do
    a=${slide_start[$s]}
    b=$([ "$s" -lt 4 ] && echo "${slide_start[$((s + 1))]}" || echo "$total")
    en="enable='between(t,$a,$b)'"
    vf="$vf,drawbox=x=0:y=0:w=iw:h=ih:color=${bg[$s]}:t=fill:$en"
    printf '%s' "${titles[$s]}" >"$work/title$s.txt"
    vf="$vf,drawtext=fontfile=$font:textfile=$work/title$s.txt:fontsize=40:fontcolor=${fg[$s]}:x=(w-tw)/2:y=40:$en"
    if [ -n "${body[$s]}" ]; then
        printf "${body[$s]}" >"$work/body$s.txt"
        vf="$vf,drawtext=fontfile=$font:textfile=$work/body$s.txt:fontsize=24:line_spacing=14:fontcolor=${fg[$s]}:x=(w-tw)/2:y=150:$en"
    fi
done
# slide 3: a bar chart, seconds per stage (metadata 3, analyse 12, save 0.1), bars grow from a baseline at y=300
a=${slide_start[3]} b=${slide_start[4]}
en="enable='between(t,$a,$b)'"
vf="$vf,drawbox=x=100:y=300:w=440:h=2:color=white:t=fill:$en"
vf="$vf,drawbox=x=140:y=240:w=80:h=60:color=0x4c9be8:t=fill:$en"
vf="$vf,drawbox=x=280:y=120:w=80:h=180:color=0xe8a44c:t=fill:$en"
vf="$vf,drawbox=x=420:y=297:w=80:h=3:color=0x6cc070:t=fill:$en"
i=0
for label in metadata analyse save; do
    printf '%s' "$label" >"$work/label$i.txt"
    vf="$vf,drawtext=fontfile=$font:textfile=$work/label$i.txt:fontsize=18:fontcolor=white:x=$((180 + 140 * i))-tw/2:y=310:$en"
    i=$((i + 1))
done
ffmpeg -nostdin -v error -y -f lavfi -i "color=c=0x1e2a38:s=640x360:r=10:d=$total" -i "$work/narration.wav" \
    -i "$work/meta.txt" -i "$vtt.tmp" -vf "${vf#,}" -map 0:v -map 1:a -map 3:s -map_metadata 2 -map_chapters 2 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 64k -c:s mov_text -metadata:s:s:0 language=eng \
    -metadata:s:a:0 language=eng -t "$total" "$work/sample.mp4"
mv "$work/sample.mp4" "$mp4"
mv "$vtt.tmp" "$vtt"
echo "$sum" >"$stamp"
echo "$mp4"
