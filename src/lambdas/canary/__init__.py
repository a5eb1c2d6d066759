"""The canary: watches X-Ray and CloudWatch themselves, and pages out of band (FR-019/036/049/050)."""
