"""Plain-text rendering of a learning path (CLI, demo)."""

from __future__ import annotations

from kt.planner.path import LearningPath


def render_path(path: LearningPath) -> str:
    """The path as numbered bundles with one line of reasons per item."""
    lines = [f"Learning path for user {path.user_id}"
             + (f" towards {', '.join(path.goal_topics)}" if path.goal_topics else "")
             + (f" (languages: {', '.join(path.languages)})" if path.languages else "")]
    if not path.bundles:
        lines.append("  nothing to recommend: no target topic has unseen items in these languages")
    for n, b in enumerate(path.bundles, 1):
        lines.append(f"{n}. {b.topic_name} ({b.topic_id}) - {b.reason}; stage {b.stage}, mastery {b.mastery:.2f}; "
                     f"difficulty band {b.band[0]:.2f}-{b.band[1]:.2f}")
        for i in b.items:
            lines.append(f"   - {i.content_id} [{i.language}, {i.kind}, difficulty {i.difficulty:.2f}] "
                         f"p(success)={i.predicted_success:.2f}; {i.reason}")
    return "\n".join(lines)
