"""The thin core: session handles, the turn pipeline, approvals, routing and live harnesses."""
